package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aetherium/aetherium/apiv1"
)

func newKeyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Create, list and revoke API keys (admin key)"}
	cmd.AddCommand(newKeyCreateCmd(g), newKeyListCmd(g), newKeyRevokeCmd(g))
	return cmd
}

func newKeyCreateCmd(g *globals) *cobra.Command {
	req := &apiv1.KeyRequest{}
	var admin bool
	var ttl time.Duration
	cmd := &cobra.Command{
		Use: "create", Short: "Create a key and print it (the only time it is shown)", Args: cobra.NoArgs,
		Example: "  aether key create --project team-a --name ci --ttl 720h",
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl < 0 {
				return fmt.Errorf("--ttl %s: must not be negative", ttl)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			// --project names the key's project; the request itself acts in the admin's own.
			req.Project, req.Role, req.TTLSeconds = g.project, "member", int64(ttl/time.Second)
			if admin {
				req.Role = "admin"
			}
			k, err := c.CreateKey(cmd.Context(), req)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return g.print(cmd.OutOrStdout(), k, nil)
			}
			fmt.Fprintln(cmd.OutOrStdout(), k.Key)
			fmt.Fprintf(cmd.ErrOrStderr(), "key %s (%s, project %s) created; it is not shown again\n", k.Prefix, k.Role, k.ProjectID)
			return nil
		},
	}
	cmd.Flags().StringVar(&req.Name, "name", "", "a note telling the key apart")
	cmd.Flags().BoolVar(&admin, "admin", false, "an admin key (default: member)")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "expire after this long (0: never)")
	return cmd
}

func newKeyListCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List keys (with --project, one project's): prefix, role, expiry, revocation; never secrets", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			list, err := c.WithProject("").ListKeys(cmd.Context(), g.project)
			if err != nil {
				return err
			}
			return printKeys(g, cmd, list...)
		},
	}
	return cmd
}

func newKeyRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "revoke PREFIX...", Short: "Revoke keys by prefix or ID", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var out []*apiv1.APIKey
			for _, p := range args {
				k, err := c.RevokeKey(cmd.Context(), p)
				if err != nil {
					return err
				}
				out = append(out, k)
			}
			return printKeys(g, cmd, out...)
		},
	}
}

func printKeys(g *globals, cmd *cobra.Command, list ...*apiv1.APIKey) error {
	when := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Local().Format(time.DateTime)
	}
	return g.print(cmd.OutOrStdout(), list, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, "PREFIX\tROLE\tPROJECT\tNAME\tCREATED\tEXPIRES\tREVOKED")
		for _, k := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.Prefix, k.Role, k.ProjectID, k.Name,
				k.CreatedAt.Local().Format(time.DateTime), when(k.ExpiresAt), when(k.RevokedAt))
		}
	})
}

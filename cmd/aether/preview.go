package main

import (
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aetherium/aetherium/apiv1"
)

func newPreviewCmd(g *globals) *cobra.Command {
	var ttl time.Duration
	var list bool
	var revoke string
	cmd := &cobra.Command{
		Use: "preview VM [PORT]", ValidArgsFunction: completeVM(g, false),
		Short: "Print a public URL of a port of a sandbox (a preview token), list or revoke them",
		Long: "Creates a preview token of PORT and prints the URL that opens it in a browser:\n" +
			"{port}-{sandbox ID}.{preview domain}, served by aetherd at the root of its own origin (aetherd needs\n" +
			"api.preview_domain and a wildcard DNS record). Anyone with the URL reaches the port until the token\n" +
			"expires (--ttl) or is revoked; the token is not shown again. Scripts may send the token in the\n" +
			"X-Aether-Preview-Token header instead.",
		Example: "  aether preview dev 3000 --ttl 2h\n  aether preview dev --list\n  aether preview dev --revoke 6f1c…",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			vm, out := args[0], cmd.OutOrStdout()
			switch {
			case list:
				ps, err := c.ListPreviews(cmd.Context(), vm)
				if err != nil {
					return err
				}
				return g.print(out, ps, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "ID\tPORT\tURL\tEXPIRES")
					for _, p := range ps {
						fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", p.ID, p.Port, p.URL, p.ExpiresAt.Local().Format(time.DateTime))
					}
				})
			case revoke != "":
				if err := c.RevokePreview(cmd.Context(), vm, revoke); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "preview token %s revoked\n", revoke)
				return nil
			}
			if len(args) != 2 {
				return errors.New("give the PORT to open (or --list, --revoke ID)")
			}
			port, err := strconv.Atoi(args[1])
			if err != nil || port < 1 || port > 65535 {
				return fmt.Errorf("port %q: want a number between 1 and 65535", args[1])
			}
			if ttl < 0 || ttl%time.Second != 0 {
				return fmt.Errorf("--ttl %s: want whole seconds, at least 1s (0: 24h)", ttl)
			}
			p, err := c.CreatePreview(cmd.Context(), vm, port, int64(ttl/time.Second))
			if err != nil {
				return err
			}
			return printPreview(g, cmd, p)
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "the token's lifetime (0: the server's default, 24h; at most 168h)")
	cmd.Flags().BoolVar(&list, "list", false, "list the sandbox's preview tokens (never their secrets)")
	cmd.Flags().StringVar(&revoke, "revoke", "", "revoke the preview token with this ID")
	cmd.MarkFlagsMutuallyExclusive("list", "revoke")
	return cmd
}

func printPreview(g *globals, cmd *cobra.Command, p *apiv1.Preview) error {
	if g.output == "json" || g.output == "yaml" {
		return g.print(cmd.OutOrStdout(), p, nil)
	}
	fmt.Fprintln(cmd.OutOrStdout(), p.TokenURL)
	fmt.Fprintf(cmd.ErrOrStderr(), "preview token %s of port %d, until %s; header %s: %s\n", p.ID, p.Port,
		p.ExpiresAt.Local().Format(time.DateTime), "X-Aether-Preview-Token", p.Token)
	return nil
}

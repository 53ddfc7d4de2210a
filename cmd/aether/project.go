package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aetherium/aetherium/apiv1"
)

func newProjectCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "project", Short: "Create, list and delete projects and set their quotas (admin key)"}
	cmd.AddCommand(newProjectCreateCmd(g), newProjectListCmd(g), newProjectRmCmd(g), newProjectQuotaCmd(g))
	return cmd
}

// quotaFlags adds the quota flags to cmd.
func quotaFlags(cmd *cobra.Command, q *apiv1.Quota) {
	cmd.Flags().IntVar(&q.Sandboxes, "sandboxes", 0, "sandboxes at once (0: no limit)")
	cmd.Flags().IntVar(&q.VCPUs, "vcpus", 0, "vCPUs over all sandboxes (0: no limit)")
	cmd.Flags().IntVar(&q.MemoryMB, "memory-mb", 0, "memory over all sandboxes, MiB (0: no limit)")
	cmd.Flags().IntVar(&q.Templates, "templates", 0, "templates (0: no limit)")
	cmd.Flags().IntVar(&q.PoolSize, "pool-size", 0, "warm-pool sandboxes over all templates (0: no limit)")
	cmd.Flags().IntVar(&q.Execs, "execs", 0, "concurrent interactive execs (0: no limit)")
}

func newProjectCreateCmd(g *globals) *cobra.Command {
	req := &apiv1.ProjectRequest{}
	cmd := &cobra.Command{
		Use: "create NAME", Short: "Create a project", Args: cobra.ExactArgs(1),
		Example: "  aether project create team-a --sandboxes 10 --execs 20\n  aether key create --project team-a",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			req.Name = args[0]
			p, err := c.CreateProject(cmd.Context(), req)
			if err != nil {
				return err
			}
			return printProjects(g, cmd, p)
		},
	}
	quotaFlags(cmd, &req.Quota)
	return cmd
}

func newProjectListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List projects", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			list, err := c.ListProjects(cmd.Context())
			if err != nil {
				return err
			}
			return printProjects(g, cmd, list...)
		},
	}
}

func newProjectRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "rm PROJECT...", Short: "Delete empty projects and their keys", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			for _, p := range args {
				if err := c.DeleteProject(cmd.Context(), p); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), p)
			}
			return nil
		},
	}
}

func newProjectQuotaCmd(g *globals) *cobra.Command {
	q := &apiv1.Quota{}
	cmd := &cobra.Command{
		Use: "quota PROJECT", Short: "Replace a project's quota (unset flags mean no limit)", Args: cobra.ExactArgs(1),
		Example: "  aether project quota team-a --sandboxes 5 --vcpus 10 --execs 8",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			p, err := c.SetQuota(cmd.Context(), args[0], q)
			if err != nil {
				return err
			}
			return printProjects(g, cmd, p)
		},
	}
	quotaFlags(cmd, q)
	return cmd
}

func printProjects(g *globals, cmd *cobra.Command, list ...*apiv1.Project) error {
	var v any = list
	if len(list) == 1 {
		v = list[0]
	}
	limit := func(n int) string {
		if n == 0 {
			return "-"
		}
		return fmt.Sprint(n)
	}
	return g.print(cmd.OutOrStdout(), v, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, "NAME\tID\tSANDBOXES\tVCPUS\tMEMORY_MB\tTEMPLATES\tPOOL\tEXECS\tCREATED")
		for _, p := range list {
			q := p.Quota
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.ID, limit(q.Sandboxes), limit(q.VCPUs), limit(q.MemoryMB),
				limit(q.Templates), limit(q.PoolSize), limit(q.Execs), p.CreatedAt.Local().Format(time.DateTime))
		}
	})
}

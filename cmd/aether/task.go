package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aetherium/aetherium/apiv1"
)

func newTaskCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "task", Short: "Inspect and wait for tasks"}
	cmd.AddCommand(&cobra.Command{
		Use: "get TASK", Short: "Show a task", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			t, err := c.GetTask(cmd.Context(), args[0], 0)
			if err != nil {
				return err
			}
			return printTask(g, cmd, t)
		},
	}, &cobra.Command{
		Use: "wait TASK", Short: "Wait for a task to finish; fails if the task failed", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			t, err := waitTask(cmd, g, c, args[0], "task "+args[0])
			if t != nil {
				printTask(g, cmd, t)
			}
			return err
		},
	})
	return cmd
}

func printTask(g *globals, cmd *cobra.Command, t *apiv1.Task) error {
	return g.print(cmd.OutOrStdout(), t, func(tw *tabwriter.Writer) {
		fmt.Fprintf(tw, "ID\t%s\nTYPE\t%s\nSTATUS\t%s\n", t.ID, t.Type, t.Status)
		if t.Progress != "" {
			fmt.Fprintf(tw, "PROGRESS\t%s\n", t.Progress)
		}
		if t.Error != "" {
			fmt.Fprintf(tw, "ERROR\t%s\n", t.Error)
		}
		if len(t.Result) > 0 {
			fmt.Fprintf(tw, "RESULT\t%s\n", t.Result)
		}
		fmt.Fprintf(tw, "RETRIES\t%d/%d\nCREATED\t%s\n", t.RetryCount, t.MaxRetries, t.CreatedAt.Local().Format(time.DateTime))
	})
}

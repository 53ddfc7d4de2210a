package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newJobCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "job", Short: "Run lists of commands in a sandbox"}
	var wait bool
	run := &cobra.Command{
		Use: "run VM -- COMMAND...", ValidArgsFunction: completeVM(g, false), Short: "Queue commands to run in order (each through the shell); stops at the first failure",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			acc, err := c.CreateJob(cmd.Context(), args[0], args[1:])
			if err != nil {
				return err
			}
			if !wait {
				return g.print(cmd.OutOrStdout(), acc, func(tw *tabwriter.Writer) { fmt.Fprintf(tw, "job %s\ttask %s\n", acc.JobID, acc.TaskID) })
			}
			if _, err := waitTask(cmd, g, c, acc.TaskID, "job"); err != nil {
				return err
			}
			return showJob(g, cmd, acc.JobID)
		},
	}
	run.Flags().BoolVar(&wait, "wait", false, "wait and show the results")
	get := &cobra.Command{
		Use: "get JOB", Short: "Show a job and its executions", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return showJob(g, cmd, args[0]) },
	}
	cmd.AddCommand(run, get)
	return cmd
}

func showJob(g *globals, cmd *cobra.Command, id string) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	j, err := c.GetJob(cmd.Context(), id)
	if err != nil {
		return err
	}
	return g.print(cmd.OutOrStdout(), j, func(tw *tabwriter.Writer) {
		fmt.Fprintf(tw, "JOB %s\t%s\t%s\n", j.Job.ID, j.Job.Status, j.Job.Error)
		printExecutionRows(tw, j.Executions)
	})
}

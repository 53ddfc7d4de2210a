package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aetherium/aetherium/apiv1"
)

func newExecutionsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "executions VM", ValidArgsFunction: completeVM(g, false), Short: "List the commands run in a sandbox", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			list, err := c.Executions(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), list, func(tw *tabwriter.Writer) { printExecutionRows(tw, list) })
		},
	}
}

func printExecutionRows(tw *tabwriter.Writer, list []*apiv1.Execution) {
	fmt.Fprintln(tw, "STARTED\tSHELL\tCOMMAND\tEXIT\tDURATION\tSTDOUT")
	for _, e := range list {
		shell := "-" // recorded before Aetherium kept it: unknown
		if e.Shell != nil {
			shell = map[bool]string{true: "yes", false: "no"}[*e.Shell]
		}
		exit := "-"
		switch {
		case e.TimedOut:
			exit = "timeout"
		case e.Signal != "":
			exit = e.Signal
		case e.ExitCode != nil:
			exit = fmt.Sprint(*e.ExitCode)
		case e.Error != "":
			exit = "error"
		}
		cmdline := strings.Join(append([]string{e.Command}, e.Args...), " ")
		out := printable(strings.ReplaceAll(strings.TrimSpace(e.Stdout), "\n", "⏎"))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%dms\t%s\n", e.StartedAt.Local().Format(time.TimeOnly), shell, trunc(printable(cmdline), 40), exit,
			e.DurationMS, trunc(out, 50))
	}
}

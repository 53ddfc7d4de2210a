package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aetherium/aetherium/apiv1"
)

func newPsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "ps VM", ValidArgsFunction: completeVM(g, false), Args: cobra.ExactArgs(1),
		Short: "List the processes started in a sandbox with exec --detach or --keep-running",
		Long: "Only processes started through Aetherium are listed (at most 256; finished ones are forgotten first).\n" +
			"The sandbox keeps the last 1 MiB of each one's output: read it with `aether attach`.",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			list, err := c.Processes(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), list, func(tw *tabwriter.Writer) { printProcessRows(tw, list, g.wide()) })
		},
	}
}

func printProcessRows(tw *tabwriter.Writer, list []apiv1.Process, wide bool) {
	header := "PID\tSTARTED\tSTATUS\tCOMMAND"
	if wide {
		header += "\tOUTPUT\tDROPPED"
	}
	fmt.Fprintln(tw, header)
	for _, p := range list {
		status := "running"
		switch {
		case p.Running:
		case p.TimedOut:
			status = "timed out"
		case p.Signal != "":
			status = "killed (" + p.Signal + ")"
		case p.ExitCode != nil:
			status = fmt.Sprintf("exited (%d)", *p.ExitCode)
		}
		cmdline := printable(strings.Join(p.Argv, " "))
		if !wide {
			cmdline = trunc(cmdline, 50)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s", p.PID, p.StartedAt.Local().Format(time.TimeOnly), status, cmdline)
		if wide {
			fmt.Fprintf(tw, "\t%d\t%d", p.OutputBytes, p.Dropped)
		}
		fmt.Fprintln(tw)
	}
}

package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
)

func newKillCmd(g *globals) *cobra.Command {
	var sig string
	cmd := &cobra.Command{
		Use: "kill VM PID", ValidArgsFunction: completeVM(g, false), Args: cobra.ExactArgs(2),
		Short: "Send a signal to a process started with exec --detach or --keep-running",
		Long: "Signals the process's group. Only processes `aether ps` lists can be signalled, and only while they run.\n" +
			"Signals: HUP, INT, QUIT, KILL, TERM, USR1, USR2, TSTP, CONT, WINCH.",
		RunE: func(cmd *cobra.Command, args []string) error {
			pid, err := strconv.Atoi(args[1])
			if err != nil || pid < 1 {
				return fmt.Errorf("PID %q: want a process ID from `aether ps %s`", args[1], args[0])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			return c.SignalProcess(cmd.Context(), args[0], pid, sig)
		},
	}
	cmd.Flags().StringVarP(&sig, "signal", "s", "TERM", "signal name (TERM, KILL, INT, HUP, …)")
	return cmd
}

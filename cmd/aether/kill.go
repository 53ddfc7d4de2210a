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
			pid, err := pidArg(args)
			if err != nil {
				return err
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

// pidArg is args[1] of `aether VERB VM PID` as a process ID.
func pidArg(args []string) (int, error) {
	pid, err := strconv.Atoi(args[1])
	if err != nil || pid < 1 {
		return 0, fmt.Errorf("PID %q: want a process ID from `aether ps %s`", args[1], args[0])
	}
	return pid, nil
}

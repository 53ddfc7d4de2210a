package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func newAttachCmd(g *globals) *cobra.Command {
	var noFollow bool
	cmd := &cobra.Command{
		Use: "attach VM PID", ValidArgsFunction: completeVM(g, false), Args: cobra.ExactArgs(2),
		Short: "Print a background process's output and follow it until it exits",
		Long: "Prints the output the sandbox kept (the last 1 MiB) and what follows, then exits with the process's\n" +
			"exit code (128+N for a signal). Interrupting attach leaves the process running. --no-follow prints\n" +
			"what is there and returns at once.",
		RunE: func(cmd *cobra.Command, args []string) error {
			pid, err := pidArg(args)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			o, err := c.ProcessOutput(cmd.Context(), args[0], pid, !noFollow)
			if err != nil {
				return err
			}
			defer o.Close()
			if o.Dropped > 0 {
				fmt.Fprintf(os.Stderr, "aether: %d earlier bytes of output were dropped\n", o.Dropped)
			}
			res, err := o.Copy(cmd.OutOrStdout(), cmd.ErrOrStderr())
			if err != nil || res == nil {
				return err
			}
			return exitFor(res)
		},
	}
	cmd.Flags().BoolVar(&noFollow, "no-follow", false, "print the kept output and return without waiting")
	return cmd
}

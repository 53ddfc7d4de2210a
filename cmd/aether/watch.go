package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/aetherium/aetherium/apiv1"
)

func newWatchCmd(g *globals) *cobra.Command {
	var recursive bool
	cmd := &cobra.Command{
		Use: "watch VM PATH", ValidArgsFunction: completeVM(g, false), Args: cobra.ExactArgs(2),
		Short: "Print changes under a directory in a sandbox as they happen",
		Long: "One line per change: the operation (create, write, remove, rename, overflow) and the path relative\n" +
			"to PATH. -o json prints one FileEvent JSON object per line. Symlinks are never followed; an overflow\n" +
			"line means changes were lost. Runs until interrupted.",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if g.verbose {
				fmt.Fprintf(cmd.ErrOrStderr(), "watching %s in %s\n", args[1], args[0])
			}
			return c.WatchDir(cmd.Context(), args[0], args[1], recursive, nil, func(ev apiv1.FileEvent) error {
				switch g.output {
				case "json":
					b, err := json.Marshal(ev)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(w, "%s\n", b)
					return err
				case "yaml":
					fmt.Fprintln(w, "---")
					return writeYAML(w, ev)
				}
				suffix := ""
				if ev.Dir {
					suffix = "/"
				}
				_, err := fmt.Fprintf(w, "%-8s %s%s\n", printable(ev.Op), printable(ev.Path), suffix)
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "watch subdirectories too")
	return cmd
}

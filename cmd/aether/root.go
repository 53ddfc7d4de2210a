package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/aetherium/aetherium/internal/client"
)

// globals are the flags every subcommand shares.
type globals struct {
	server  string
	output  string
	project string
	verbose bool
}

// client is a client of the server with the discovered API key
// (client.DiscoverKey) acting in --project, if given.
func (g *globals) client() (*client.Client, error) {
	c, err := client.New(g.server, nil)
	if err != nil {
		return nil, err
	}
	key, _, err := client.DiscoverKey()
	if err != nil {
		return nil, err
	}
	return c.WithKey(key).WithProject(g.project), nil
}

// print writes v as JSON with -o json, else calls table.
func (g *globals) print(w io.Writer, v any, table func(tw *tabwriter.Writer)) error {
	if g.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "aether",
		Short:         "Run commands in isolated sandboxes through an Aetherium server",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if g.output != "table" && g.output != "json" {
				return fmt.Errorf("-o %q: want table or json", g.output)
			}
			return nil
		},
	}
	server := os.Getenv("AETHER_SERVER")
	if server == "" {
		server = "http://127.0.0.1:8080"
	}
	root.PersistentFlags().StringVar(&g.server, "server", server, "aetherd URL (env AETHER_SERVER)")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	root.PersistentFlags().StringVar(&g.project, "project", os.Getenv("AETHER_PROJECT"), "act in this project (admin keys; env AETHER_PROJECT)")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "print progress details")
	root.AddCommand(newVMCmd(g), newExecCmd(g), newExecuteCmd(g), newTaskCmd(g), newJobCmd(g),
		newExecutionsCmd(g), newCpCmd(g), newImageCmd(g), newHealthCmd(g), newEventsCmd(g), newTemplateCmd(g),
		newProjectCmd(g), newKeyCmd(g), newLogsCmd(g), newShellCmd(g), newPortForwardCmd(g))
	return root
}

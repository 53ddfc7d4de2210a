package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/aetherium/aetherium/client"
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

// outputs are the values of -o.
var outputs = []string{"table", "wide", "json", "yaml"}

// print writes v as JSON or YAML (with the API's field names) with -o json
// or yaml, else calls table; a table may add columns when g.wide().
func (g *globals) print(w io.Writer, v any, table func(tw *tabwriter.Writer)) error {
	switch g.output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		return writeYAML(w, v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// wide reports -o wide: tables show every column.
func (g *globals) wide() bool { return g.output == "wide" }

// writeYAML writes v as YAML under its JSON field names.
func writeYAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		return err
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(generic); err != nil {
		return err
	}
	return enc.Close()
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "aether",
		Short:         "Run commands in isolated sandboxes through an Aetherium server",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(outputs, g.output) {
				return fmt.Errorf("-o %q: want one of %s", g.output, strings.Join(outputs, ", "))
			}
			return nil
		},
	}
	server := os.Getenv("AETHER_SERVER")
	if server == "" {
		server = "http://127.0.0.1:8080"
	}
	root.PersistentFlags().StringVar(&g.server, "server", server, "aetherd URL (env AETHER_SERVER)")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "table", "output format: "+strings.Join(outputs, ", "))
	root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(outputs, cobra.ShellCompDirectiveNoFileComp))
	root.PersistentFlags().StringVar(&g.project, "project", os.Getenv("AETHER_PROJECT"), "act in this project (admin keys; env AETHER_PROJECT)")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "print progress details")
	root.AddCommand(newVMCmd(g), newExecCmd(g), newExecuteCmd(g), newTaskCmd(g), newJobCmd(g),
		newExecutionsCmd(g), newCpCmd(g), newImageCmd(g), newHealthCmd(g), newEventsCmd(g), newTemplateCmd(g),
		newProjectCmd(g), newKeyCmd(g), newLogsCmd(g), newShellCmd(g), newPortForwardCmd(g),
		newPsCmd(g), newKillCmd(g), newAttachCmd(g), newLsCmd(g), newWatchCmd(g), newPreviewCmd(g))
	return root
}

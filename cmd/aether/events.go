package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/aetherium/aetherium/apiv1"
)

func newEventsCmd(g *globals) *cobra.Command {
	var kind, vm, task string
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Follow task and sandbox state changes as they happen (Ctrl-C to stop)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			return c.Events(cmd.Context(), kind, vm, task, func(e *apiv1.Event) error {
				if g.output == "json" {
					b, _ := json.Marshal(e)
					_, err := fmt.Fprintln(out, string(b))
					return err
				}
				line := fmt.Sprintf("%s  %-4s  %-9s", e.Time.Local().Format(time.TimeOnly+".000"), e.Kind, e.Status)
				if e.Kind == "task" {
					line += fmt.Sprintf("  %-11s task %s", e.TaskType, e.TaskID)
				}
				if e.VMID != "" {
					line += "  vm " + e.VMID
				}
				if e.Error != "" {
					line += "  error: " + e.Error
				}
				_, err := fmt.Fprintln(out, line)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "", "only task or vm events")
	cmd.Flags().StringVar(&vm, "vm", "", "only events of this sandbox (ID or name)")
	cmd.Flags().StringVar(&task, "task", "", "only events of this task")
	return cmd
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/aetherium/aetherium/apiv1"
)

func newLogsCmd(g *globals) *cobra.Command {
	var follow bool
	var task, stream, grep string
	var since time.Duration
	var n int
	cmd := &cobra.Command{
		Use: "logs [VM]", ValidArgsFunction: completeVM(g, false),
		Short: "Show log records: sandbox lifecycle, task progress, command output (-f to follow)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			q := &apiv1.LogQuery{TaskID: task, Stream: stream, Contains: grep}
			if len(args) == 1 {
				q.VMID = args[0]
			}
			if since > 0 {
				q.Since = time.Now().Add(-since)
			}
			out := cmd.OutOrStdout()
			if follow {
				return c.StreamLogs(cmd.Context(), q, n, func(m *apiv1.LogStreamMessage) error {
					if m.Dropped > 0 {
						fmt.Fprintf(cmd.ErrOrStderr(), "aether: %d records missed (reading too slowly)\n", m.Dropped)
					}
					if m.Record == nil {
						return nil
					}
					return g.printLog(out, m.Record)
				})
			}
			// The newest n, printed oldest first (or the first n since --since).
			q.Limit = n
			if since > 0 {
				q.Direction = "forward"
			}
			page, err := c.QueryLogs(cmd.Context(), q)
			if err != nil {
				return err
			}
			if q.Direction != "forward" {
				slices.Reverse(page.Records)
			}
			for i := range page.Records {
				if err := g.printLog(out, &page.Records[i]); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new records")
	cmd.Flags().StringVar(&task, "task", "", "only records of this task")
	cmd.Flags().StringVar(&stream, "stream", "", "only stdout, stderr, lifecycle, task or aetherd")
	cmd.Flags().StringVar(&grep, "grep", "", "only lines containing this text")
	cmd.Flags().DurationVar(&since, "since", 0, "only records of the last D (like 10m)")
	cmd.Flags().IntVarP(&n, "lines", "n", 100, "how many records (with -f: how many stored ones first)")
	return cmd
}

func (g *globals) printLog(w io.Writer, r *apiv1.LogRecord) error {
	if g.output == "json" {
		b, _ := json.Marshal(r)
		_, err := fmt.Fprintln(w, string(b))
		return err
	}
	line := r.Line
	if r.Truncated {
		line += " …[truncated]"
	}
	who := r.VMID
	if len(who) > 12 {
		who = who[:12]
	}
	_, err := fmt.Fprintf(w, "%s  %-12s  %-9s  %s\n", r.Time.Local().Format(time.TimeOnly+".000"), who, r.Stream, line)
	return err
}

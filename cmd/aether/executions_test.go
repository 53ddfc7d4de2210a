package main

import (
	"slices"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/aetherium/aetherium/apiv1"
)

// TestExecutionRowsShowShell: aether executions (and job get) say how each
// command ran: yes (a /bin/sh -c line), no (the program) or - (recorded
// before Aetherium kept it), so two runs of the same command tell apart.
func TestExecutionRowsShowShell(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		shell *bool
		want  string
	}{
		{"shell line", new(true), "yes"},
		{"program", new(false), "no"},
		{"unknown", nil, "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b strings.Builder
			tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
			printExecutionRows(tw, []*apiv1.Execution{{Command: "true", Shell: tt.shell, ExitCode: new(0)}})
			tw.Flush()
			lines := strings.Split(strings.TrimSpace(b.String()), "\n")
			if len(lines) != 2 {
				t.Fatalf("table = %q, want a header and one row", b.String())
			}
			head, row := strings.Fields(lines[0]), strings.Fields(lines[1])
			if i := slices.Index(head, "SHELL"); i < 0 || i >= len(row) || row[i] != tt.want {
				t.Errorf("shell %v: table\n%s\nwant %q under SHELL", tt.shell, b.String(), tt.want)
			}
		})
	}
}

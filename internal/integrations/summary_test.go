package integrations

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aetherium/aetherium/internal/store"
)

// TestTail: the output tail is bounded, cut on a rune boundary and marked.
func TestTail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		max      int
		want     string
	}{
		{"short", "ok\n\n", 10, "ok"},
		{"cut", "abcdef", 3, "…def"},
		{"cut inside a rune", "x" + strings.Repeat("é", 4), 3, "…é"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Tail(tt.in, tt.max)
			if got != tt.want || !utf8.ValidString(got) {
				t.Errorf("Tail(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
		})
	}
}

// TestSummary: commands with their exit codes, the last command's output,
// and output that cannot close the Markdown code block early.
func TestSummary(t *testing.T) {
	t.Parallel()
	one, zero := 1, 0
	n := &Notification{Job: &store.Job{ID: "j1", Status: store.JobFailed, Error: "command 2 failed\nmore"}, Link: "https://x/api/v1/jobs/j1",
		Executions: []*store.Execution{{Command: "git clone", ExitCode: &zero}, {Command: "make `test`", ExitCode: &one, Stderr: "```\nboom"}}}
	got := Summary(n)
	for _, want := range []string{"**job j1 failed: command 2 failed**", "https://x/api/v1/jobs/j1", "1. `git clone` → exit 0",
		"2. `make 'test'` → exit 1", "boom"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "```") != 2 {
		t.Errorf("the output opened or closed a code block:\n%s", got)
	}
}

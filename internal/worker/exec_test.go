package worker

import (
	"slices"
	"testing"

	"github.com/aetherium/aetherium/internal/task"
)

// TestAgentRequestArgv checks which argv the agent is asked to run: a shell
// line only when the request wants one, so a program name holding a space
// or a $ reaches the agent as one word when shell is false.
func TestAgentRequestArgv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    task.ExecParams
		want []string
	}{
		{name: "lone command is a shell line", p: task.ExecParams{Command: "echo $HOME | wc"}, want: []string{"/bin/sh", "-c", "echo $HOME | wc"}},
		{name: "args make a program", p: task.ExecParams{Command: "echo", Args: []string{"$HOME"}}, want: []string{"echo", "$HOME"}},
		{name: "shell false runs the lone command", p: task.ExecParams{Command: "/tmp/a b$x", Shell: new(false)}, want: []string{"/tmp/a b$x"}},
		{name: "shell false with args", p: task.ExecParams{Command: "/tmp/a b", Args: []string{"$y"}, Shell: new(false)}, want: []string{"/tmp/a b", "$y"}},
		{name: "shell true is a shell line", p: task.ExecParams{Command: "true", Shell: new(true)}, want: []string{"/bin/sh", "-c", "true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := agentRequest(&tt.p).Argv; !slices.Equal(got, tt.want) {
				t.Errorf("agentRequest(%+v).Argv = %q, want %q", tt.p, got, tt.want)
			}
		})
	}
}

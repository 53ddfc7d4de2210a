package task

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/tools"
)

func TestExecParamsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		p       ExecParams
		wantErr string // "" means valid
	}{
		{name: "shell command", p: ExecParams{Command: "echo hi | wc -c"}},
		{name: "full", p: ExecParams{Command: "ls", Args: []string{"-l"}, Env: map[string]string{"A_1": "x"}, Cwd: "/tmp", TimeoutSeconds: 86400}},
		{name: "empty command", p: ExecParams{}, wantErr: "command"},
		{name: "negative timeout", p: ExecParams{Command: "ls", TimeoutSeconds: -1}, wantErr: "timeout_seconds"},
		{name: "timeout over a day", p: ExecParams{Command: "ls", TimeoutSeconds: 86401}, wantErr: "timeout_seconds"},
		{name: "relative cwd", p: ExecParams{Command: "ls", Cwd: "tmp"}, wantErr: "cwd"},
		{name: "bad env name", p: ExecParams{Command: "ls", Env: map[string]string{"1A": "x"}}, wantErr: "env"},
		{name: "no shell, no args", p: ExecParams{Command: "true", Shell: new(false)}},
		{name: "no shell with args", p: ExecParams{Command: "ls", Args: []string{"-l"}, Shell: new(false)}},
		{name: "shell line", p: ExecParams{Command: "ls | wc", Shell: new(true)}},
		{name: "shell with args", p: ExecParams{Command: "ls", Args: []string{"-l"}, Shell: new(true)}, wantErr: "shell"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.p.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (!errors.Is(err, errdefs.ErrInvalidArgument) || !strings.HasPrefix(err.Error(), tt.wantErr)) {
				t.Errorf("Validate(%+v) = %v, want %q", tt.p, err, tt.wantErr)
			}
		})
	}
}

func TestCreateTimeout(t *testing.T) {
	t.Parallel()
	steps := []tools.Step{{Recipe: &tools.Recipe{Timeout: time.Minute}}, {Recipe: &tools.Recipe{Timeout: 2 * time.Minute}}}
	if got := CreateTimeout(steps); got != 8*time.Minute {
		t.Errorf("CreateTimeout(1m, 2m steps) = %s, want vm:create's 5m plus 3m", got)
	}
	if got := CreateTimeout(nil); got != 5*time.Minute {
		t.Errorf("CreateTimeout(none) = %s, want 5m", got)
	}
}

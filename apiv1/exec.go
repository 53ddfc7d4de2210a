package apiv1

import (
	"path"
	"regexp"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
)

// MaxExecTimeout bounds ExecRequest.TimeoutSeconds.
const MaxExecTimeout = 24 * time.Hour

// ExecRequest is one command to run in a sandbox: the body of
// POST /api/v1/vms/{id}/exec and /execute (server-side, task.ExecParams).
//
// When Args is empty, Command is run by /bin/sh -c, so pipes and quoting work.
// Otherwise Command is the program and Args its arguments, with no shell.
// Shell overrides the first rule: false runs Command as a program even
// with no Args.
type ExecRequest struct {
	Command string   `json:"command"`
	Args    []string `json:"args,omitempty"`
	// Shell says whether Command is a shell line for /bin/sh -c: nil means
	// "when Args is empty"; false runs Command as the program (with Args,
	// if any) and no shell; true with Args is invalid.
	Shell *bool `json:"shell,omitempty"`
	// Env adds variables to the command's environment.
	Env map[string]string `json:"env,omitempty"`
	// Cwd is an absolute directory; empty means the agent's default.
	Cwd string `json:"cwd,omitempty"`
	// User runs the command as this user; empty means the agent's.
	User string `json:"user,omitempty"`
	// TimeoutSeconds kills the command after this long; 0 means no limit
	// of its own, at most MaxExecTimeout.
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
	// Background starts the command and answers 202 with its PID at once
	// (POST /api/v1/vms/{id}/exec only); the sandbox's agent keeps its
	// output (see Process). No stdin.
	Background bool `json:"background,omitempty"`
	// KeepRunning streams the command's output like any exec, but the
	// command keeps running when the client goes away (an ordinary exec is
	// killed then); its output can be read afterwards like a background
	// process's.
	KeepRunning bool `json:"keep_running,omitempty"`
}

// UsesShell reports whether Command runs as a /bin/sh -c line (see Shell).
func (p *ExecRequest) UsesShell() bool {
	if p.Shell != nil {
		return *p.Shell
	}
	return len(p.Args) == 0
}

var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate reports the first invalid field as ErrInvalidArgument naming it.
func (p *ExecRequest) Validate() error {
	switch {
	case p.Command == "":
		return errdefs.InvalidArgument("command: must not be empty")
	case p.TimeoutSeconds < 0 || time.Duration(p.TimeoutSeconds)*time.Second > MaxExecTimeout:
		return errdefs.InvalidArgument("timeout_seconds: must be between 0 and %d", int(MaxExecTimeout.Seconds()))
	case p.Shell != nil && *p.Shell && len(p.Args) > 0:
		return errdefs.InvalidArgument("shell: a shell line takes no args (put them in command, or set shell to false)")
	case p.Background && p.KeepRunning:
		return errdefs.InvalidArgument("background and keep_running: set at most one")
	case p.Cwd != "" && !path.IsAbs(p.Cwd):
		return errdefs.InvalidArgument("cwd: %q must be an absolute path", p.Cwd)
	}
	for k := range p.Env {
		if !envKey.MatchString(k) {
			return errdefs.InvalidArgument("env: %q is not a valid variable name", k)
		}
	}
	return nil
}

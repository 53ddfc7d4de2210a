package task

import (
	"io"
	"path"
	"regexp"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
)

// MaxExecTimeout bounds ExecParams.TimeoutSeconds.
const MaxExecTimeout = 24 * time.Hour

// ExecParams is one command to run in a sandbox: the body of
// POST /api/v1/vms/{id}/exec and /execute, the payload of vm:execute tasks
// (inside VMExecuteArgs), and what the Go client sends.
//
// When Args is empty, Command is run by /bin/sh -c, so pipes and quoting work.
// Otherwise Command is the program and Args its arguments, with no shell.
type ExecParams struct {
	Command string   `json:"command"`
	Args    []string `json:"args,omitempty"`
	// Env adds variables to the command's environment.
	Env map[string]string `json:"env,omitempty"`
	// Cwd is an absolute directory; empty means the agent's default.
	Cwd string `json:"cwd,omitempty"`
	// User runs the command as this user; empty means the agent's.
	User string `json:"user,omitempty"`
	// TimeoutSeconds kills the command after this long; 0 means no limit
	// of its own, at most MaxExecTimeout.
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
}

var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate reports the first invalid field as ErrInvalidArgument naming it.
func (p *ExecParams) Validate() error {
	switch {
	case p.Command == "":
		return errdefs.InvalidArgument("command: must not be empty")
	case p.TimeoutSeconds < 0 || time.Duration(p.TimeoutSeconds)*time.Second > MaxExecTimeout:
		return errdefs.InvalidArgument("timeout_seconds: must be between 0 and %d", int(MaxExecTimeout.Seconds()))
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

// ExecRecord links an execution to the task or job that ran it; the zero
// value is an interactive exec.
type ExecRecord struct {
	TaskID string
	JobID  string
}

// File is a file being read out of a sandbox. The reader must be closed.
type File struct {
	io.ReadCloser
	// Size is the file's length in bytes.
	Size int64
	// Mode is its permission bits.
	Mode uint32
}

// ExecResult is the result of vm:execute.
type ExecResult struct {
	ExecutionID string `json:"execution_id"`
	ExitCode    *int   `json:"exit_code"`
	Signal      string `json:"signal,omitempty"`
	TimedOut    bool   `json:"timed_out"`
	Stdout      string `json:"stdout"`
	Stderr      string `json:"stderr"`
	DurationMS  int64  `json:"duration_ms"`
}

// ExecResultOf is the result of a vm:execute task that ran e.
func ExecResultOf(e *store.Execution) *ExecResult {
	return &ExecResult{ExecutionID: e.ID, ExitCode: e.ExitCode, Signal: e.Signal, TimedOut: e.TimedOut,
		Stdout: e.Stdout, Stderr: e.Stderr, DurationMS: e.DurationMS}
}

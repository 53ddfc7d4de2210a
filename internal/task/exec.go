package task

import (
	"io"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/internal/store"
)

// MaxExecTimeout bounds ExecParams.TimeoutSeconds.
const MaxExecTimeout = apiv1.MaxExecTimeout

// ExecParams is one command to run in a sandbox (apiv1.ExecRequest): the
// body of POST /api/v1/vms/{id}/exec and /execute and the payload of
// vm:execute tasks (inside VMExecuteArgs).
type ExecParams = apiv1.ExecRequest

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

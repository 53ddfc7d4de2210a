package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/tools"
)

// MaxExecTimeout bounds timeout_seconds.
const MaxExecTimeout = 24 * time.Hour

// ExecParams is one command to run: the body of POST /vms/{id}/execute and
// /exec, and the payload of vm:execute tasks.
//
// When Args is empty, Command is run by /bin/sh -c, so pipes and quoting work.
// Otherwise Command is the program and Args its arguments, with no shell.
type ExecParams struct {
	Command        string            `json:"command"`
	Args           []string          `json:"args,omitempty"`
	Env            map[string]string `json:"env,omitempty"`
	Cwd            string            `json:"cwd,omitempty"`
	User           string            `json:"user,omitempty"`
	TimeoutSeconds int               `json:"timeout_seconds,omitempty"`
}

var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate reports the first invalid field.
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

func (p *ExecParams) request() *agentproto.ExecRequest {
	argv := append([]string{p.Command}, p.Args...)
	if len(p.Args) == 0 {
		argv = []string{"/bin/sh", "-c", p.Command}
	}
	env := make([]string, 0, len(p.Env))
	for _, k := range slices.Sorted(maps.Keys(p.Env)) {
		env = append(env, k+"="+p.Env[k])
	}
	return &agentproto.ExecRequest{Argv: argv, Env: env, Cwd: p.Cwd, User: p.User,
		TimeoutMS: int64(p.TimeoutSeconds) * 1000}
}

// ExecRecord links an execution to the task or job that ran it.
type ExecRecord struct {
	TaskID string
	JobID  string
}

// Exec runs p in the sandbox, streaming output to eio, and records it as an
// execution. It returns the finished record: a timeout is recorded with
// timed_out and returned without error; errors are for commands that could
// not run at all (sandbox not running: ErrFailedPrecondition; program not
// found: ErrInvalidArgument; agent gone: ErrUnavailable).
func (w *Worker) Exec(ctx context.Context, vm *store.VM, p *ExecParams, rec ExecRecord, eio agentclient.ExecIO) (*store.Execution, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if vm.Status != store.VMRunning {
		return nil, errdefs.FailedPrecondition("sandbox %s is %s, not running", vm.Name, vm.Status)
	}
	client, err := w.agent(ctx, vm)
	if err != nil {
		return nil, err
	}
	defer w.begin(ctx, vm)()
	e, err := w.store.ExecutionInsert(ctx, &store.ExecutionInsertParams{ProjectID: vm.ProjectID, VMID: vm.ID,
		TaskID: rec.TaskID, JobID: rec.JobID, Command: p.Command, Args: p.Args})
	if err != nil {
		return nil, err
	}
	stdout, stderr := newCapture(w.cfg.MaxOutputBytes), newCapture(w.cfg.MaxOutputBytes)
	exit, xerr := client.Exec(ctx, p.request(), agentclient.ExecIO{
		Stdin:  eio.Stdin,
		Stdout: teeTo(stdout, eio.Stdout),
		Stderr: teeTo(stderr, eio.Stderr),
	})
	fin := &store.ExecutionFinishParams{ID: e.ID, Stdout: stdout.String(), StdoutTruncated: stdout.truncated,
		Stderr: stderr.String(), StderrTruncated: stderr.truncated}
	var te *agentclient.ExecTimeoutError
	switch {
	case xerr == nil || errors.As(xerr, &te):
		fin.Signal, fin.DurationMS = exit.Signal, exit.DurationMS
		fin.TimedOut = exit.TimedOut
		if exit.Signal == "" {
			fin.ExitCode = &exit.ExitCode
		}
		xerr = nil
	case errors.Is(xerr, errdefs.ErrNotFound):
		xerr = errdefs.InvalidArgument("command %q not found in sandbox %s", p.Command, vm.Name)
		fin.Error = xerr.Error()
	default:
		fin.Error = xerr.Error()
	}
	// Record the outcome even if the caller went away.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	done, err := w.store.ExecutionFinish(sctx, fin)
	if err != nil {
		return nil, errors.Join(xerr, err)
	}
	return done, xerr
}

// agent returns a ready agent connection, waiting a bounded time for a
// sandbox that is still booting or was just restarted.
func (w *Worker) agent(ctx context.Context, vm *store.VM) (*agentclient.Client, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := w.agents.Get(cctx, vm.ID)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil, errdefs.FailedPrecondition("sandbox %s has no running machine on worker %s", vm.Name, w.cfg.ID)
		}
		return nil, errdefs.Unavailable("sandbox %s agent unreachable: %v", vm.Name, err)
	}
	return c, nil
}

// PutFile writes r to path inside the sandbox (atomically; parents created).
func (w *Worker) PutFile(ctx context.Context, vm *store.VM, path string, mode uint32, r io.Reader) (int64, error) {
	if err := checkPath(path); err != nil {
		return 0, err
	}
	if vm.Status != store.VMRunning {
		return 0, errdefs.FailedPrecondition("sandbox %s is %s, not running", vm.Name, vm.Status)
	}
	c, err := w.agent(ctx, vm)
	if err != nil {
		return 0, err
	}
	defer w.begin(ctx, vm)()
	return c.PutFile(ctx, &agentproto.FilePutRequest{Path: path, Mode: mode, MkdirAll: true}, r)
}

// File is a file being read out of a sandbox.
type File struct {
	io.ReadCloser
	Size int64
	Mode uint32
}

// GetFile opens path inside the sandbox for reading.
func (w *Worker) GetFile(ctx context.Context, vm *store.VM, path string) (*File, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	if vm.Status != store.VMRunning {
		return nil, errdefs.FailedPrecondition("sandbox %s is %s, not running", vm.Name, vm.Status)
	}
	c, err := w.agent(ctx, vm)
	if err != nil {
		return nil, err
	}
	end := w.begin(ctx, vm)
	fr, err := c.GetFile(ctx, path)
	if errors.Is(err, errdefs.ErrNotFound) {
		end()
		return nil, errdefs.NotFound("file %s not found in sandbox %s", path, vm.Name)
	}
	if err != nil {
		end()
		return nil, err
	}
	return &File{ReadCloser: &endOnClose{ReadCloser: fr, end: end}, Size: fr.Size, Mode: fr.Mode}, nil
}

func checkPath(p string) error {
	if p == "" || !path.IsAbs(p) {
		return errdefs.InvalidArgument("path: %q must be an absolute path", p)
	}
	return nil
}

// capture keeps the first max bytes written and notes whether more came.
type capture struct {
	buf       []byte
	max       int
	truncated bool
}

func newCapture(max int) *capture { return &capture{max: max} }

func (c *capture) Write(p []byte) (int, error) {
	room := c.max - len(c.buf)
	if len(p) > room {
		c.truncated = true
		c.buf = append(c.buf, p[:max(room, 0)]...)
	} else {
		c.buf = append(c.buf, p...)
	}
	return len(p), nil
}

func (c *capture) String() string { return string(c.buf) }

func teeTo(c *capture, w io.Writer) io.Writer {
	if w == nil {
		return c
	}
	return io.MultiWriter(c, w)
}

// ExecResult is the result of a vm:execute task.
type ExecResult struct {
	ExecutionID string `json:"execution_id"`
	ExitCode    *int   `json:"exit_code"`
	Signal      string `json:"signal,omitempty"`
	TimedOut    bool   `json:"timed_out"`
	Stdout      string `json:"stdout"`
	Stderr      string `json:"stderr"`
	DurationMS  int64  `json:"duration_ms"`
}

func resultOf(e *store.Execution) *ExecResult {
	return &ExecResult{ExecutionID: e.ID, ExitCode: e.ExitCode, Signal: e.Signal, TimedOut: e.TimedOut,
		Stdout: e.Stdout, Stderr: e.Stderr, DurationMS: e.DurationMS}
}

// ExecTaskTimeout is the timeout of a vm:execute task: the command's own
// timeout plus time to reach the sandbox and record the result.
func ExecTaskTimeout(p *ExecParams) time.Duration {
	if p.TimeoutSeconds == 0 {
		return Policies[TypeVMExecute].Timeout
	}
	return time.Duration(p.TimeoutSeconds)*time.Second + 2*time.Minute
}

// CreateTaskTimeout is the timeout of a vm:create task that installs steps.
func CreateTaskTimeout(steps []tools.Step) time.Duration {
	d := Policies[TypeVMCreate].Timeout
	for _, s := range steps {
		d += s.Recipe.Timeout
	}
	return d
}

// endOnClose ends a transfer's activity when the download is closed.
type endOnClose struct {
	io.ReadCloser
	end  func()
	once sync.Once
}

func (e *endOnClose) Close() error {
	e.once.Do(e.end)
	return e.ReadCloser.Close()
}

// Console returns the end of the sandbox's console output, when its runtime
// keeps one (microVMs do; containers have none).
func (w *Worker) Console(ctx context.Context, vm *store.VM, maxBytes int) ([]byte, error) {
	cl, ok := w.rt.(sandbox.ConsoleLogger)
	if !ok {
		return nil, fmt.Errorf("%w: runtime %s keeps no console log", errdefs.ErrNotImplemented, w.cfg.RuntimeName)
	}
	return cl.ConsoleLog(ctx, vm.ID, maxBytes)
}

package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/logs"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// agentRequest is p as the agent runs it: through /bin/sh -c when p asks for
// a shell (p.UsesShell), with the environment sorted.
func agentRequest(p *task.ExecParams) *agentproto.ExecRequest {
	argv := append([]string{p.Command}, p.Args...)
	if p.UsesShell() {
		argv = []string{"/bin/sh", "-c", p.Command}
	}
	env := make([]string, 0, len(p.Env))
	for _, k := range slices.Sorted(maps.Keys(p.Env)) {
		env = append(env, k+"="+p.Env[k])
	}
	return &agentproto.ExecRequest{Argv: argv, Env: env, Cwd: p.Cwd, User: p.User,
		TimeoutMS: int64(p.TimeoutSeconds) * 1000, KeepRunning: p.KeepRunning}
}

// Exec runs p in the sandbox, streaming output to eio, and records it as an
// execution. It returns the finished record: a timeout is recorded with
// timed_out and returned without error; errors are for commands that could
// not run at all (sandbox not running: ErrFailedPrecondition; program not
// found: ErrInvalidArgument; agent gone: ErrUnavailable).
func (w *Worker) Exec(ctx context.Context, vm *store.VM, p *task.ExecParams, rec task.ExecRecord, eio agentclient.ExecIO) (*store.Execution, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	client, err := w.runningAgent(ctx, vm)
	if err != nil {
		return nil, err
	}
	defer w.begin(ctx, vm)()
	// Shell is what agentRequest decides, not the request's field: the
	// record says how the command actually ran.
	e, err := w.store.ExecutionInsert(ctx, &store.ExecutionInsertParams{ProjectID: vm.ProjectID, VMID: vm.ID,
		TaskID: rec.TaskID, JobID: rec.JobID, Command: p.Command, Args: p.Args, Shell: new(p.UsesShell())})
	if err != nil {
		return nil, err
	}
	stdout, stderr := newCapture(w.cfg.MaxOutputBytes), newCapture(w.cfg.MaxOutputBytes)
	outW, errW := teeTo(stdout, eio.Stdout), teeTo(stderr, eio.Stderr)
	if w.cfg.Logs != nil { // every line becomes a log record; never blocks
		l := logs.Labels{Project: vm.ProjectID, VMID: vm.ID, TaskID: rec.TaskID, ExecutionID: e.ID, Level: logs.LevelInfo}
		l.Stream = logs.StreamStdout
		lo := w.cfg.Logs.LineWriter(l)
		l.Stream = logs.StreamStderr
		le := w.cfg.Logs.LineWriter(l)
		defer lo.Flush()
		defer le.Flush()
		outW, errW = io.MultiWriter(outW, lo), io.MultiWriter(errW, le)
	}
	// The agent enforces the command's timeout; the host does too, a grace
	// later, so an agent that never ends a command cannot hold the call.
	xctx, cancel := ctx, context.CancelFunc(func() {})
	if p.TimeoutSeconds > 0 {
		xctx, cancel = context.WithTimeoutCause(ctx, time.Duration(p.TimeoutSeconds)*time.Second+execGrace, errAgentOverran)
	}
	defer cancel()
	exit, xerr := client.Exec(xctx, agentRequest(p), agentclient.ExecIO{Stdin: eio.Stdin, Stdout: outW, Stderr: errW})
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
	case ctx.Err() == nil && errors.Is(context.Cause(xctx), errAgentOverran):
		xerr = errdefs.Unavailable("sandbox %s: the agent did not end the command within its timeout (%ds) + %s; the agent is broken",
			vm.Name, p.TimeoutSeconds, execGrace)
		fin.Error = xerr.Error()
		w.agents.Forget(vm.ID) // the next use reconnects
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

// execGrace is how long past a command's timeout the host waits for the
// agent to end it before giving up on the agent.
const execGrace = 10 * time.Second

// errAgentOverran is the cause of an exec cut off at its timeout + execGrace.
var errAgentOverran = errors.New("agent overran the command's timeout")

// runningAgent returns the agent connection of a running sandbox; a
// sandbox in another state is ErrFailedPrecondition.
func (w *Worker) runningAgent(ctx context.Context, vm *store.VM) (*agentclient.Client, error) {
	if vm.Status != store.VMRunning {
		return nil, errdefs.FailedPrecondition("sandbox %s is %s, not running", vm.Name, vm.Status)
	}
	return w.agent(ctx, vm)
}

// agent returns a ready agent connection, waiting a bounded time for a
// sandbox that is still booting or was just restarted.
func (w *Worker) agent(ctx context.Context, vm *store.VM) (*agentclient.Client, error) {
	cctx, cancel := context.WithTimeout(ctx, w.cfg.AgentWait)
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
	c, err := w.runningAgent(ctx, vm)
	if err != nil {
		return 0, err
	}
	defer w.begin(ctx, vm)()
	return c.PutFile(ctx, &agentproto.FilePutRequest{Path: path, Mode: mode, MkdirAll: true}, r)
}

// GetFile opens path inside the sandbox for reading.
func (w *Worker) GetFile(ctx context.Context, vm *store.VM, path string) (*task.File, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	c, err := w.runningAgent(ctx, vm)
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
	return &task.File{ReadCloser: &endOnClose{ReadCloser: fr, end: end}, Size: fr.Size, Mode: fr.Mode}, nil
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

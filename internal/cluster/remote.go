package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// remote runs sandbox calls on another worker through its internal endpoint.
// The owner records executions in the shared store, as a local call would.
type remote struct{ c *client.Client }

var _ Sandboxes = remote{}

// Exec implements Sandboxes. The owner records the execution; the returned
// record carries what the exec stream reports (no captured output).
func (r remote) Exec(ctx context.Context, vm *store.VM, p *task.ExecParams, _ task.ExecRecord, eio agentclient.ExecIO) (*store.Execution, error) {
	res, err := r.c.Exec(ctx, vm.ID, p, eio.Stdin, eio.Stdout, eio.Stderr)
	if err != nil {
		return nil, classify(err)
	}
	return &store.Execution{ID: res.ExecutionID, VMID: vm.ID, ExitCode: res.ExitCode, Signal: res.Signal,
		TimedOut: res.TimedOut, DurationMS: res.DurationMS}, nil
}

// PutFile implements Sandboxes.
func (r remote) PutFile(ctx context.Context, vm *store.VM, path string, mode uint32, rd io.Reader) (int64, error) {
	n, err := r.c.PutFile(ctx, vm.ID, path, mode, rd)
	return n, classify(err)
}

// GetFile implements Sandboxes.
func (r remote) GetFile(ctx context.Context, vm *store.VM, path string) (*task.File, error) {
	resp, err := r.c.OpenFile(ctx, vm.ID, path)
	if err != nil {
		return nil, classify(err)
	}
	mode, _ := strconv.ParseUint(resp.Header.Get("X-File-Mode"), 8, 32)
	return &task.File{ReadCloser: resp.Body, Size: resp.ContentLength, Mode: uint32(mode)}, nil
}

// classify gives a worker's API error its errdefs class again, so the API in
// front answers with the same status the worker chose.
func classify(err error) error {
	var e *client.Error
	if !errors.As(err, &e) {
		if err != nil {
			return errdefs.Unavailable("worker unreachable: %v", err)
		}
		return nil
	}
	switch e.Status {
	case http.StatusNotFound:
		return errdefs.NotFound("%s", e.Message)
	case http.StatusBadRequest:
		return errdefs.InvalidArgument("%s", e.Message)
	case http.StatusConflict:
		if e.Code == "conflict" { // a process that has exited
			return errdefs.Conflict("%s", e.Message)
		}
		return errdefs.FailedPrecondition("%s", e.Message)
	case http.StatusNotImplemented:
		return fmt.Errorf("%w: %s", errdefs.ErrNotImplemented, e.Message)
	case http.StatusGatewayTimeout:
		return errdefs.Unavailable("%s", e.Message)
	}
	return errdefs.Unavailable("worker: %s", e.Message)
}

// Console implements Sandboxes.
func (r remote) Console(ctx context.Context, vm *store.VM, maxBytes int) ([]byte, error) {
	b, err := r.c.Console(ctx, vm.ID, maxBytes)
	return b, classify(err)
}

// Pty implements Sandboxes over the owner's internal PTY WebSocket.
func (r remote) Pty(ctx context.Context, vm *store.VM, req *agentproto.PtyRequest) (Terminal, error) {
	t, err := r.c.Pty(ctx, vm.ID, &client.PtyOptions{Argv: req.Argv, Env: req.Env, Cwd: req.Cwd, User: req.User,
		Cols: int(req.Cols), Rows: int(req.Rows)})
	if err != nil {
		return nil, classify(err)
	}
	return remoteTerminal{t}, nil
}

// remoteTerminal adapts a client.Terminal to Terminal.
type remoteTerminal struct{ *client.Terminal }

func (t remoteTerminal) Resize(cols, rows uint16) error {
	return t.Terminal.Resize(int(cols), int(rows))
}

func (t remoteTerminal) Signal(sig int) error { return t.Terminal.Signal(SignalName(sig)) }

func (t remoteTerminal) Wait() (*agentproto.Exit, error) {
	m, err := t.Terminal.Wait()
	if err != nil {
		return nil, classify(err)
	}
	return &agentproto.Exit{ExitCode: *m.ExitCode, Signal: m.Signal}, nil
}

// Dial implements Sandboxes over the owner's internal TCP WebSocket.
func (r remote) Dial(ctx context.Context, vm *store.VM, port int) (net.Conn, error) {
	conn, err := r.c.DialPort(ctx, vm.ID, port)
	return conn, classify(err)
}

// StartProcess implements Guest.
func (r remote) StartProcess(ctx context.Context, vm *store.VM, p *task.ExecParams) (int, error) {
	pid, err := r.c.StartProcess(ctx, vm.ID, p)
	return pid, classify(err)
}

// Processes implements Guest.
func (r remote) Processes(ctx context.Context, vm *store.VM) ([]apiv1.Process, error) {
	ps, err := r.c.Processes(ctx, vm.ID)
	return ps, classify(err)
}

// SignalProcess implements Guest.
func (r remote) SignalProcess(ctx context.Context, vm *store.VM, pid, sig int) error {
	return classify(r.c.SignalProcess(ctx, vm.ID, pid, SignalName(sig)))
}

// ProcessOutput implements Guest.
func (r remote) ProcessOutput(ctx context.Context, vm *store.VM, pid int, follow bool) (Output, error) {
	o, err := r.c.ProcessOutput(ctx, vm.ID, pid, follow)
	if err != nil {
		return nil, classify(err)
	}
	return remoteOutput{o}, nil
}

// remoteOutput adapts a client.OutputStream to Output.
type remoteOutput struct{ *client.OutputStream }

func (o remoteOutput) Dropped() int64 { return o.OutputStream.Dropped }

func (o remoteOutput) Copy(stdout, stderr io.Writer) (*apiv1.ExecExit, error) {
	e, err := o.OutputStream.Copy(stdout, stderr)
	return e, classify(err)
}

// ListDir implements Guest.
func (r remote) ListDir(ctx context.Context, vm *store.VM, path string) (*apiv1.DirListing, error) {
	l, err := r.c.ListDir(ctx, vm.ID, path)
	if err != nil {
		return nil, classify(err)
	}
	return l, nil
}

// WatchDir implements Guest.
func (r remote) WatchDir(ctx context.Context, vm *store.VM, path string, recursive bool, ready func(), fn func(apiv1.FileEvent) error) error {
	return classify(r.c.WatchDir(ctx, vm.ID, path, recursive, ready, fn))
}

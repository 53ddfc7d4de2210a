package worker

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/cluster"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

var _ cluster.Guest = (*Worker)(nil)

// StartProcess starts p in the background in the sandbox and returns its
// PID. It records no execution: the process is listed by Processes.
func (w *Worker) StartProcess(ctx context.Context, vm *store.VM, p *task.ExecParams) (int, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	c, err := w.runningAgent(ctx, vm)
	if err != nil {
		return 0, err
	}
	defer w.begin(ctx, vm)()
	pid, err := c.StartBackground(ctx, agentRequest(p))
	if errors.Is(err, errdefs.ErrNotFound) {
		return 0, errdefs.InvalidArgument("command %q not found in sandbox %s", p.Command, vm.Name)
	}
	return pid, err
}

// Processes lists the sandbox's tracked processes.
func (w *Worker) Processes(ctx context.Context, vm *store.VM) ([]apiv1.Process, error) {
	c, err := w.runningAgent(ctx, vm)
	if err != nil {
		return nil, err
	}
	ps, err := c.Processes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]apiv1.Process, 0, len(ps))
	for _, p := range ps {
		ap := apiv1.Process{PID: p.PID, Argv: p.Argv, StartedAt: p.StartedAt.UTC(), Running: p.Running,
			OutputBytes: p.OutputBytes, Dropped: p.Dropped}
		if p.Exit != nil {
			e := execExit(p.Exit)
			ap.ExitCode, ap.Signal, ap.TimedOut = e.ExitCode, e.Signal, e.TimedOut
		}
		out = append(out, ap)
	}
	return out, nil
}

func execExit(e *agentproto.Exit) *apiv1.ExecExit {
	out := &apiv1.ExecExit{Signal: e.Signal, TimedOut: e.TimedOut, DurationMS: e.DurationMS}
	if e.Signal == "" {
		code := e.ExitCode
		out.ExitCode = &code
	}
	return out
}

// SignalProcess sends sig to a tracked process's group.
func (w *Worker) SignalProcess(ctx context.Context, vm *store.VM, pid, sig int) error {
	c, err := w.runningAgent(ctx, vm)
	if err != nil {
		return err
	}
	return c.SignalProcess(ctx, pid, sig)
}

// ProcessOutput opens a tracked process's output. The sandbox counts as
// active until it is closed.
func (w *Worker) ProcessOutput(ctx context.Context, vm *store.VM, pid int, follow bool) (cluster.Output, error) {
	c, err := w.runningAgent(ctx, vm)
	if err != nil {
		return nil, err
	}
	end := w.begin(ctx, vm)
	o, err := c.Output(ctx, pid, follow)
	if err != nil {
		end()
		return nil, err
	}
	return &output{OutputStream: o, end: end}, nil
}

// output adapts an agentclient.OutputStream to cluster.Output and ends the
// sandbox's activity when closed.
type output struct {
	*agentclient.OutputStream
	end  func()
	once sync.Once
}

func (o *output) Dropped() int64 { return o.OutputStream.Dropped }

func (o *output) Copy(stdout, stderr io.Writer) (*apiv1.ExecExit, error) {
	e, err := o.OutputStream.Copy(agentclient.ExecIO{Stdout: stdout, Stderr: stderr})
	if err != nil || e == nil {
		return nil, err
	}
	return execExit(e), nil
}

func (o *output) Close() error {
	o.once.Do(o.end)
	return o.OutputStream.Close()
}

// ListDir lists the directory path in the sandbox.
func (w *Worker) ListDir(ctx context.Context, vm *store.VM, path string) (*apiv1.DirListing, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	c, err := w.runningAgent(ctx, vm)
	if err != nil {
		return nil, err
	}
	l, err := c.List(ctx, path)
	if err != nil {
		return nil, err
	}
	out := &apiv1.DirListing{Path: path, Entries: make([]apiv1.DirEntry, 0, len(l.Entries)), Truncated: l.Truncated}
	for _, e := range l.Entries {
		out.Entries = append(out.Entries, apiv1.DirEntry(e))
	}
	return out, nil
}

// WatchDir watches the directory path in the sandbox until ctx ends. The
// sandbox counts as active meanwhile.
func (w *Worker) WatchDir(ctx context.Context, vm *store.VM, path string, recursive bool, ready func(), fn func(apiv1.FileEvent) error) error {
	if err := checkPath(path); err != nil {
		return err
	}
	c, err := w.runningAgent(ctx, vm)
	if err != nil {
		return err
	}
	defer w.begin(ctx, vm)()
	return c.Watch(ctx, path, recursive, ready, func(ev agentproto.FileEvent) error {
		return fn(apiv1.FileEvent(ev))
	})
}

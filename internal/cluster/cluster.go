// Package cluster decides where sandboxes live and how to reach them:
// placing new sandboxes on live workers with room, and routing exec and file
// calls to the worker that owns a sandbox — in process when that is this
// worker, else over the owner's internal endpoint, authenticated with the
// cluster's shared token — and the liveness rule every role applies to the
// worker registry. cmd/aetherd wires it; the API consumes the Router as its
// Sandboxes, and the worker uses Alive. It never imports the worker.
package cluster

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// DefaultDeadAfter is how long a worker may miss heartbeats before its
// sandboxes are considered lost.
const DefaultDeadAfter = 30 * time.Second

// Alive reports whether w heartbeated within deadAfter of now. It is the one
// liveness rule: placement, routing and the worker's sweep of dead workers
// all use it.
func Alive(w *store.Worker, now time.Time, deadAfter time.Duration) bool {
	return now.Sub(w.HeartbeatAt) <= deadAfter
}

// Registry is the part of the store cluster reads: the worker registry.
type Registry interface {
	// WorkerList lists all workers.
	WorkerList(ctx context.Context) ([]*store.Worker, error)
	// WorkerLoad sums each worker's sandboxes that hold resources.
	WorkerLoad(ctx context.Context) (map[string]store.Load, error)
}

// Place picks the live worker with room for a sandbox of vcpus and memoryMB
// (store.Worker.Room) that holds the least memory; when only is not empty,
// that worker or none (it holds an image the sandbox needs). It returns
// ErrUnavailable when there is none, and the registry's errors as they are.
// The store checks the room again when the sandbox's row is inserted, so
// concurrent creates cannot overshoot a worker.
func Place(ctx context.Context, st Registry, deadAfter time.Duration, only string, vcpus, memoryMB int) (*store.Worker, error) {
	workers, err := st.WorkerList(ctx)
	if err != nil {
		return nil, err
	}
	load, err := st.WorkerLoad(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var best *store.Worker
	for _, w := range workers {
		if (only != "" && w.ID != only) || !Alive(w, now, deadAfter) {
			continue
		}
		if ok, _ := w.Room(load[w.ID], vcpus, memoryMB); !ok {
			continue
		}
		if best == nil || less(load[w.ID], load[best.ID]) {
			best = w
		}
	}
	if best == nil && only != "" {
		return nil, errdefs.Unavailable("worker %s, which holds the template, is not live or has no room", only)
	}
	if best == nil {
		return nil, errdefs.Unavailable("no live worker has room for another sandbox")
	}
	return best, nil
}

// less orders loads: less memory first, then fewer sandboxes.
func less(a, b store.Load) bool {
	if a.MemoryMB != b.MemoryMB {
		return a.MemoryMB < b.MemoryMB
	}
	return a.Sandboxes < b.Sandboxes
}

// Sandboxes runs commands and moves files in sandboxes. The worker
// implements it for the sandboxes of its own host; the Router implements it
// for every sandbox by sending each call to the owner. The API serves its
// exec, file and console routes through one. Implementations are safe for
// concurrent use. Errors: a sandbox that is not running is
// ErrFailedPrecondition, a bad path or command ErrInvalidArgument, a missing
// file ErrNotFound, an unreachable owner or agent ErrUnavailable.
type Sandboxes interface {
	// Exec runs p, streaming output to eio, and returns the execution record
	// (a command that timed out is a record with TimedOut, not an error).
	Exec(ctx context.Context, vm *store.VM, p *task.ExecParams, rec task.ExecRecord, eio agentclient.ExecIO) (*store.Execution, error)
	// PutFile writes r to path (atomically, parents created) and returns its size.
	PutFile(ctx context.Context, vm *store.VM, path string, mode uint32, r io.Reader) (int64, error)
	// GetFile opens path for reading; the caller closes it.
	GetFile(ctx context.Context, vm *store.VM, path string) (*task.File, error)
	// Console returns the end of the sandbox's console output, at most
	// maxBytes; ErrNotImplemented for runtimes that keep none.
	Console(ctx context.Context, vm *store.VM, maxBytes int) ([]byte, error)
	// Pty starts req on a new pseudo-terminal; ctx bounds only the start.
	// The caller closes the Terminal, which kills the process. An agent
	// without the operation is ErrNotImplemented.
	Pty(ctx context.Context, vm *store.VM, req *agentproto.PtyRequest) (Terminal, error)
	// Dial connects to 127.0.0.1:port inside the sandbox; ctx bounds only
	// the dial. Nothing listening there is ErrUnavailable. The connection
	// has no half-close.
	Dial(ctx context.Context, vm *store.VM, port int) (net.Conn, error)
	// Guest's methods: background processes, listing and watching (an
	// agent older than protocol version 3 is ErrFailedPrecondition).
	Guest
}

// Guest covers a sandbox's background processes and directories. Only
// processes started through Aetherium are listed or signalled: an unknown
// PID is ErrNotFound, one that exited ErrConflict.
type Guest interface {
	// StartProcess starts p in the background and returns its PID.
	StartProcess(ctx context.Context, vm *store.VM, p *task.ExecParams) (int, error)
	// Processes lists the tracked processes.
	Processes(ctx context.Context, vm *store.VM) ([]apiv1.Process, error)
	// SignalProcess sends sig (one SignalNumber allows) to pid's process group.
	SignalProcess(ctx context.Context, vm *store.VM, pid, sig int) error
	// ProcessOutput opens pid's buffered output (and, with follow, what
	// follows until it exits); the caller closes it.
	ProcessOutput(ctx context.Context, vm *store.VM, pid int, follow bool) (Output, error)
	// ListDir lists the directory path with lstat.
	ListDir(ctx context.Context, vm *store.VM, path string) (*apiv1.DirListing, error)
	// WatchDir calls ready once the directory path is watched, then fn with
	// each change until ctx ends (nil), fn fails, or the watch breaks.
	WatchDir(ctx context.Context, vm *store.VM, path string, recursive bool, ready func(), fn func(apiv1.FileEvent) error) error
}

// Output is a tracked process's output being read: Copy once, then Close.
type Output interface {
	// Dropped is how many bytes the agent had dropped when the read began.
	Dropped() int64
	// Copy copies the output to stdout and stderr and returns the exit, or
	// nil when the process still runs (a read that does not follow).
	Copy(stdout, stderr io.Writer) (*apiv1.ExecExit, error)
	// Close ends the read (never the process); it is idempotent.
	Close() error
}

// Terminal is a process running on a pseudo-terminal in a sandbox. Read and
// Wait belong to one goroutine, Write, Resize and Signal to any other; Close
// may be called at any time and is idempotent.
type Terminal interface {
	// Read reads the terminal's output; io.EOF once the process has exited
	// and all its output was read.
	Read(p []byte) (int, error)
	// Write types p into the terminal.
	Write(p []byte) (int, error)
	// Resize sets the terminal's size; the process gets SIGWINCH.
	Resize(cols, rows uint16) error
	// Signal sends sig to the terminal's foreground process group.
	Signal(sig int) error
	// Wait returns the exit once Read returned io.EOF.
	Wait() (*agentproto.Exit, error)
	// Close ends the session and kills the process.
	Close() error
}

var _ Sandboxes = (*Router)(nil)

// RouterConfig configures a Router.
type RouterConfig struct {
	// LocalID is this process's worker ID; empty when it runs no worker.
	LocalID string
	// Local serves sandboxes owned by LocalID; nil when there is no worker.
	Local Sandboxes
	// Token authenticates calls to other workers' internal endpoints. Empty
	// means remote calls are refused with a message saying to set it.
	Token string
	// DeadAfter is the heartbeat age after which a worker is lost; 0 means DefaultDeadAfter.
	DeadAfter time.Duration
}

// Router sends each sandbox call to the sandbox's owner. It is safe for
// concurrent use.
type Router struct {
	cfg   RouterConfig
	store Registry
	http  *http.Client

	mu      sync.Mutex
	workers map[string]*store.Worker
	fetched time.Time
}

// NewRouter returns a Router over the store's worker registry.
func NewRouter(cfg RouterConfig, st Registry) *Router {
	if cfg.DeadAfter == 0 {
		cfg.DeadAfter = DefaultDeadAfter
	}
	return &Router{cfg: cfg, store: st, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

// owner returns the local worker, or a client of the owning worker's
// internal endpoint.
func (r *Router) owner(ctx context.Context, vm *store.VM) (Sandboxes, error) {
	if r.cfg.Local != nil && (vm.WorkerID == r.cfg.LocalID || vm.WorkerID == "") {
		return r.cfg.Local, nil
	}
	w, err := r.worker(ctx, vm.WorkerID, false)
	if err == nil && !Alive(w, time.Now(), r.cfg.DeadAfter) {
		w, err = r.worker(ctx, vm.WorkerID, true) // the cache may predate a restart
	}
	if err != nil {
		return nil, err
	}
	if !Alive(w, time.Now(), r.cfg.DeadAfter) {
		return nil, errdefs.Unavailable("sandbox %s lives on worker %s, which is not heartbeating", vm.Name, w.ID)
	}
	if r.cfg.Token == "" {
		return nil, errdefs.Unavailable("sandbox %s lives on worker %s; set internal_token on every aetherd to reach it", vm.Name, w.ID)
	}
	c, err := client.NewInternal("http://"+w.Address, r.cfg.Token, r.http)
	if err != nil {
		return nil, errdefs.Unavailable("worker %s advertises a bad address %q", w.ID, w.Address)
	}
	return remote{c.WithProject(vm.ProjectID)}, nil
}

// worker looks a worker up in the registry, cached for a second unless fresh.
func (r *Router) worker(ctx context.Context, id string, fresh bool) (*store.Worker, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w, ok := r.workers[id]; ok && !fresh && time.Since(r.fetched) < time.Second {
		return w, nil
	}
	list, err := r.store.WorkerList(ctx)
	if err != nil {
		return nil, err
	}
	r.workers, r.fetched = make(map[string]*store.Worker, len(list)), time.Now()
	for _, w := range list {
		r.workers[w.ID] = w
	}
	if w, ok := r.workers[id]; ok {
		return w, nil
	}
	return nil, errdefs.Unavailable("sandbox's worker %q is not registered", id)
}

// Exec implements Sandboxes.
func (r *Router) Exec(ctx context.Context, vm *store.VM, p *task.ExecParams, rec task.ExecRecord, eio agentclient.ExecIO) (*store.Execution, error) {
	o, err := r.owner(ctx, vm)
	if err != nil {
		return nil, err
	}
	return o.Exec(ctx, vm, p, rec, eio)
}

// PutFile implements Sandboxes.
func (r *Router) PutFile(ctx context.Context, vm *store.VM, path string, mode uint32, rd io.Reader) (int64, error) {
	o, err := r.owner(ctx, vm)
	if err != nil {
		return 0, err
	}
	return o.PutFile(ctx, vm, path, mode, rd)
}

// GetFile implements Sandboxes.
func (r *Router) GetFile(ctx context.Context, vm *store.VM, path string) (*task.File, error) {
	o, err := r.owner(ctx, vm)
	if err != nil {
		return nil, err
	}
	return o.GetFile(ctx, vm, path)
}

// Pty implements Sandboxes.
func (r *Router) Pty(ctx context.Context, vm *store.VM, req *agentproto.PtyRequest) (Terminal, error) {
	o, err := r.owner(ctx, vm)
	if err != nil {
		return nil, err
	}
	return o.Pty(ctx, vm, req)
}

// Dial implements Sandboxes.
func (r *Router) Dial(ctx context.Context, vm *store.VM, port int) (net.Conn, error) {
	o, err := r.owner(ctx, vm)
	if err != nil {
		return nil, err
	}
	return o.Dial(ctx, vm, port)
}

// StartProcess implements Guest.
func (r *Router) StartProcess(ctx context.Context, vm *store.VM, p *task.ExecParams) (int, error) {
	o, err := r.owner(ctx, vm)
	if err != nil {
		return 0, err
	}
	return o.StartProcess(ctx, vm, p)
}

// Processes implements Guest.
func (r *Router) Processes(ctx context.Context, vm *store.VM) ([]apiv1.Process, error) {
	o, err := r.owner(ctx, vm)
	if err != nil {
		return nil, err
	}
	return o.Processes(ctx, vm)
}

// SignalProcess implements Guest.
func (r *Router) SignalProcess(ctx context.Context, vm *store.VM, pid, sig int) error {
	o, err := r.owner(ctx, vm)
	if err != nil {
		return err
	}
	return o.SignalProcess(ctx, vm, pid, sig)
}

// ProcessOutput implements Guest.
func (r *Router) ProcessOutput(ctx context.Context, vm *store.VM, pid int, follow bool) (Output, error) {
	o, err := r.owner(ctx, vm)
	if err != nil {
		return nil, err
	}
	return o.ProcessOutput(ctx, vm, pid, follow)
}

// ListDir implements Guest.
func (r *Router) ListDir(ctx context.Context, vm *store.VM, path string) (*apiv1.DirListing, error) {
	o, err := r.owner(ctx, vm)
	if err != nil {
		return nil, err
	}
	return o.ListDir(ctx, vm, path)
}

// WatchDir implements Guest.
func (r *Router) WatchDir(ctx context.Context, vm *store.VM, path string, recursive bool, ready func(), fn func(apiv1.FileEvent) error) error {
	o, err := r.owner(ctx, vm)
	if err != nil {
		return err
	}
	return o.WatchDir(ctx, vm, path, recursive, ready, fn)
}

// Console implements Sandboxes.
func (r *Router) Console(ctx context.Context, vm *store.VM, maxBytes int) ([]byte, error) {
	o, err := r.owner(ctx, vm)
	if err != nil {
		return nil, err
	}
	return o.Console(ctx, vm, maxBytes)
}

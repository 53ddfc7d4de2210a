// Package worker runs Aetherium's work on one host: it handles queue
// deliveries (task types below), serves exec and file calls for the sandboxes
// it owns, heartbeats, and reconciles its runtime with the store after a
// crash. The daemon wires one Worker per process with role worker or all.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/tools"
)

// Task types.
const (
	TypeVMCreate       = "vm:create"
	TypeVMExecute      = "vm:execute"
	TypeVMDelete       = "vm:delete"
	TypeJobRun         = "job:run"
	TypeImageBuild     = "image:build"
	TypeTemplate       = "template:build"
	TypeTemplateDelete = "template:delete"
	TypeVMPause        = "vm:pause"
	TypeVMResume       = "vm:resume"
	TypeVMSnapshot     = "vm:snapshot"
)

// TaskPolicy is how the queue treats one task type.
type TaskPolicy struct {
	Priority   string
	MaxRetries int
	Timeout    time.Duration
}

// Policies holds each task type's priority, retries and timeout. Commands
// (execute, job) are never retried: running a user's command twice is worse
// than reporting that it failed.
var Policies = map[string]TaskPolicy{
	TypeVMCreate:       {Priority: queue.PriorityHigh, MaxRetries: 3, Timeout: 5 * time.Minute},
	TypeVMExecute:      {Priority: queue.PriorityDefault, MaxRetries: 0, Timeout: 30 * time.Minute},
	TypeVMDelete:       {Priority: queue.PriorityCritical, MaxRetries: 5, Timeout: 2 * time.Minute},
	TypeJobRun:         {Priority: queue.PriorityDefault, MaxRetries: 0, Timeout: 2 * time.Hour},
	TypeImageBuild:     {Priority: queue.PriorityLow, MaxRetries: 1, Timeout: 30 * time.Minute},
	TypeTemplate:       {Priority: queue.PriorityLow, MaxRetries: 1, Timeout: 30 * time.Minute},
	TypeTemplateDelete: {Priority: queue.PriorityDefault, MaxRetries: 3, Timeout: 2 * time.Minute},
	TypeVMPause:        {Priority: queue.PriorityHigh, MaxRetries: 3, Timeout: time.Minute},
	TypeVMResume:       {Priority: queue.PriorityCritical, MaxRetries: 3, Timeout: time.Minute},
	TypeVMSnapshot:     {Priority: queue.PriorityDefault, MaxRetries: 1, Timeout: 15 * time.Minute},
}

// MaxTimeout is the longest timeout in Policies.
func MaxTimeout() time.Duration {
	var m time.Duration
	for _, p := range Policies {
		m = max(m, p.Timeout)
	}
	return m
}

// Config configures a Worker.
type Config struct {
	// ID names this worker in the store and in its sandboxes' ownership. Required.
	ID string
	// Address is where other roles reach this worker's internal API.
	Address string
	// RuntimeName is the runtime's name for the store and health ("docker").
	RuntimeName string
	// Capacity is the number of sandboxes this worker should hold; 0 means 100.
	Capacity int
	// MaxOutputBytes caps each stream stored per execution; 0 means 64 KiB.
	// Streamed output is never capped, only what is kept.
	MaxOutputBytes int
	// HeartbeatInterval is how often the worker refreshes its store row; 0 means 10s.
	HeartbeatInterval time.Duration
	// ReconcileInterval is how often orphans and lost tasks are swept; 0 means 30s.
	ReconcileInterval time.Duration
	// RequeueAfter is how old a pending task must be before the reconciler
	// re-sends its message (enqueue right after insert normally does it); 0
	// means 15s.
	RequeueAfter time.Duration
	// DeadAfter is how long another worker may miss heartbeats before its
	// sandboxes are marked lost and its tasks failed; 0 means 30s.
	DeadAfter time.Duration
	// Tools are the recipes tool installation uses; nil means the built-in ones.
	Tools *tools.Registry
	// Logger receives logs; nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) withDefaults() {
	if c.Capacity == 0 {
		c.Capacity = 100
	}
	if c.MaxOutputBytes == 0 {
		c.MaxOutputBytes = 64 << 10
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 10 * time.Second
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = 30 * time.Second
	}
	if c.RequeueAfter == 0 {
		c.RequeueAfter = 15 * time.Second
	}
	if c.DeadAfter == 0 {
		c.DeadAfter = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Tools == nil {
		c.Tools, _ = tools.Load("")
	}
}

// Worker handles tasks and sandbox I/O on one host. It is safe for concurrent use.
type Worker struct {
	cfg    Config
	log    *slog.Logger
	store  store.Store
	queue  queue.Queue
	rt     sandbox.Runtime
	agents *sandbox.Agents
	images *image.Builder
	act    activity
}

// New returns a Worker. images may be nil when this worker does not build images.
func New(cfg Config, st store.Store, q queue.Queue, rt sandbox.Runtime, images *image.Builder) (*Worker, error) {
	cfg.withDefaults()
	if cfg.ID == "" {
		return nil, errors.New("worker: ID is required")
	}
	return &Worker{
		cfg: cfg, log: cfg.Logger.With("component", "worker", "worker_id", cfg.ID),
		store: st, queue: q, rt: rt, agents: sandbox.NewAgents(rt), images: images,
	}, nil
}

// Close drops all agent connections.
func (w *Worker) Close() { w.agents.Close() }

// Register records the worker in the store and reconciles once, so the
// runtime agrees with the store before the daemon takes requests or tasks.
func (w *Worker) Register(ctx context.Context) error {
	if err := w.heartbeat(ctx); err != nil {
		return fmt.Errorf("register worker: %w", err)
	}
	w.Reconcile(ctx)
	return w.heartbeat(ctx) // the reconcile may have taken a while
}

// Run heartbeats and reconciles periodically until ctx ends. Call Register
// first. Heartbeats have a goroutine of their own: a slow reconcile on a
// loaded host must not make other workers declare this one dead.
func (w *Worker) Run(ctx context.Context) error {
	go w.heartbeats(ctx)
	rc := time.NewTicker(w.cfg.ReconcileInterval)
	defer rc.Stop()
	exp := time.NewTicker(time.Second) // sandbox lifetimes have second resolution
	defer exp.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-exp.C:
			w.expire(ctx)
			w.fillPools(ctx)
		case <-rc.C:
			w.Reconcile(ctx)
		}
	}
}

func (w *Worker) heartbeats(ctx context.Context) {
	hb := time.NewTicker(w.cfg.HeartbeatInterval)
	defer hb.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hb.C:
			if err := w.heartbeat(ctx); err != nil {
				w.log.WarnContext(ctx, "heartbeat failed", slog.Any("err", err))
			}
		}
	}
}

func (w *Worker) heartbeat(ctx context.Context) error {
	_, err := w.store.WorkerUpsert(ctx, &store.WorkerUpsertParams{
		ID: w.cfg.ID, Address: w.cfg.Address, Runtime: w.cfg.RuntimeName, Capacity: w.cfg.Capacity,
	})
	return err
}

// Enqueue sends a task row's message with its type's policy to the worker
// that must run it (route; empty means any). Callers insert the row first; if
// Enqueue fails, the reconciler enqueues the row later.
func Enqueue(ctx context.Context, q queue.Queue, t *store.Task, route string) error {
	return q.Enqueue(ctx, &queue.Message{ID: t.ID, Type: t.Type, Priority: t.Priority, MaxRetries: t.MaxRetries,
		Timeout: TaskTimeout(t), Worker: route})
}

// TaskTimeout is how long one attempt of t may run: its own timeout, else
// its type's.
func TaskTimeout(t *store.Task) time.Duration {
	if t.TimeoutMS > 0 {
		return time.Duration(t.TimeoutMS) * time.Millisecond
	}
	return Policies[t.Type].Timeout
}

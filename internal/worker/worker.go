// Package worker runs Aetherium's work on one host: it handles queue
// deliveries (one handler per task kind of package task), serves exec and
// file calls for the sandboxes it owns, heartbeats, keeps warm pools and
// sandbox lifetimes, and reconciles its runtime with the store after a crash.
// The daemon wires one Worker per process with role worker or all; nothing
// else imports this package.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aetherium/aetherium/internal/cluster"
	"github.com/aetherium/aetherium/internal/egress"
	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/logs"
	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
	"github.com/aetherium/aetherium/internal/tools"
)

// Config configures a Worker.
type Config struct {
	// ID names this worker in the store and in its sandboxes' ownership. Required.
	ID string
	// Integrations delivers integration:report tasks (the integrations
	// Registry); nil means they fail for good (no integration enabled).
	Integrations Reporter
	// Address is where other roles reach this worker's internal API.
	Address string
	// RuntimeName is the runtime's name for the store and health ("docker").
	RuntimeName string
	// DefaultEgress is the egress policy of sandboxes whose row and
	// template give none (pool sandboxes, template builds); the zero Policy
	// means internet.
	DefaultEgress egress.Policy
	// Capacity caps the number of sandboxes this worker holds; VCPUs and
	// MemoryMB budget their limits, summed (store.Worker.Room). 0 means no
	// limit of that kind.
	Capacity, VCPUs, MemoryMB int
	// AgentWait bounds how long a sandbox's agent may take to answer after
	// its create or restart; 0 means 30s for Docker and 3 min for microVM
	// runtimes, whose boot under TCG emulation takes seconds on an idle
	// host and a minute or more on a loaded one.
	AgentWait time.Duration
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
	// sandboxes are marked lost and its tasks failed (cluster.Alive); 0 means
	// cluster.DefaultDeadAfter.
	DeadAfter time.Duration
	// Retention is how long finished executions, tasks, jobs and audit
	// entries are kept; each reconcile deletes older ones in batches
	// (store.HistoryPrune). 0 keeps them forever.
	Retention time.Duration
	// Tools are the recipes tool installation uses; nil means the built-in ones.
	Tools *tools.Registry
	// Logger receives logs; nil means slog.Default().
	Logger *slog.Logger
	// Logs turns every exec's stdout and stderr into log records, a line
	// each (logs.Pipeline); nil means exec output is not logged.
	Logs LineLogger
}

// LineLogger makes writers that turn output into log records without ever
// blocking (logs.Pipeline).
type LineLogger interface {
	LineWriter(l logs.Labels) *logs.LineWriter
}

func (c *Config) withDefaults() {
	if c.MaxOutputBytes == 0 {
		c.MaxOutputBytes = 64 << 10
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 10 * time.Second
	}
	if c.AgentWait == 0 {
		c.AgentWait = 30 * time.Second
		if c.RuntimeName == "qemu" || c.RuntimeName == "firecracker" {
			c.AgentWait = 3 * time.Minute
		}
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = 30 * time.Second
	}
	if c.RequeueAfter == 0 {
		c.RequeueAfter = 15 * time.Second
	}
	if c.DeadAfter == 0 {
		c.DeadAfter = cluster.DefaultDeadAfter
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Tools == nil {
		c.Tools, _ = tools.Load(tools.Config{})
	}
}

// Reporter delivers integration reports; integrations.Registry implements
// it. Report must be idempotent: a failed report is retried.
type Reporter interface {
	Report(ctx context.Context, args *task.IntegrationReportArgs) error
	// CreateArtifact pushes the git bundle at bundle (a host file) and
	// opens a pull request; it must be idempotent too.
	CreateArtifact(ctx context.Context, args *task.IntegrationArtifactArgs, bundle string) (*task.ArtifactResult, error)
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
	// kinds holds the handler of every task kind (see kinds()).
	kinds map[string]kind
}

// New returns a Worker. images may be nil when this worker does not build images.
func New(cfg Config, st store.Store, q queue.Queue, rt sandbox.Runtime, images *image.Builder) (*Worker, error) {
	cfg.withDefaults()
	if cfg.ID == "" {
		return nil, errors.New("worker: ID is required")
	}
	w := &Worker{
		cfg: cfg, log: cfg.Logger.With("component", "worker", "worker_id", cfg.ID),
		store: st, queue: q, rt: rt, agents: sandbox.NewAgents(rt), images: images,
	}
	w.kinds = w.handlers()
	return w, nil
}

// Close drops all agent connections.
func (w *Worker) Close() { w.agents.Close() }

// Register records the worker in the store and reconciles once, so the
// runtime agrees with the store before the daemon takes requests or tasks.
func (w *Worker) Register(ctx context.Context) error {
	if err := w.heartbeat(ctx); err != nil {
		return fmt.Errorf("register worker: %w", err)
	}
	w.closeCutOff(ctx)
	w.Reconcile(ctx)
	return w.heartbeat(ctx) // the reconcile may have taken a while
}

// crashReason is the error of an execution its worker died during.
const crashReason = "the worker stopped while the command was running; its outcome is unknown"

// closeCutOff closes the execution rows the previous process of this
// worker left running (interactive execs, queued commands, job steps): no
// process of this worker runs a command yet, so each was cut off by a
// crash. A failed write is logged; the next start tries again.
func (w *Worker) closeCutOff(ctx context.Context) {
	n, err := w.store.ExecutionAbandon(ctx, &store.ExecutionAbandonParams{Error: crashReason,
		StartedBefore: time.Now(), WorkerID: w.cfg.ID})
	warnIf(ctx, w.log, "close executions cut off by a crash", err)
	if n > 0 {
		w.log.WarnContext(ctx, "closed executions cut off by a crash", slog.Int64("count", n))
	}
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
			w.trimConsoles(ctx)
		case <-rc.C:
			w.Reconcile(ctx)
		}
	}
}

// trimConsoles keeps the runtime's console logs capped; a guest writes them
// as fast as it likes.
func (w *Worker) trimConsoles(ctx context.Context) {
	if ct, ok := w.rt.(sandbox.ConsoleTrimmer); ok {
		if err := ct.TrimConsoles(ctx); err != nil {
			w.log.WarnContext(ctx, "console trim failed", slog.Any("err", err))
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
		VCPUs: w.cfg.VCPUs, MemoryMB: w.cfg.MemoryMB,
	})
	return err
}

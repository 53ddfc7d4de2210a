// Package sqlitequeue is the embedded queue.Queue: River on its own SQLite
// file in the data directory. Jobs are rows in that file, so they survive
// restarts; delivery is by polling because SQLite has no LISTEN/NOTIFY.
//
// The queue file must be used by one process at a time (the daemon locks its
// data directory), which is what makes crash recovery at Start safe: any job
// still marked running belongs to a process that is gone.
package sqlitequeue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/store/sqlite"
)

// Config configures a Queue.
type Config struct {
	// Path is the SQLite file holding the jobs. Required.
	Path string
	// WorkerID is the worker this instance serves: it consumes messages for
	// any worker and those routed to WorkerID. Empty means only the former.
	WorkerID string
	// Concurrency is the total number of handlers running at once, shared
	// among priorities by Weights (queue.Slots). 0 means 16.
	Concurrency int
	// Weights is each priority's share of Concurrency when several wait, and
	// sets how many one priority may hold (queue.Caps). Nil means
	// queue.DefaultWeights.
	Weights map[string]int
	// PollInterval is how often idle workers look for jobs they were not told
	// about: retries coming due and jobs inserted by another process. Jobs
	// enqueued through this Queue wake a worker at once (River triggers a
	// local fetch on insert), so this is not the pickup latency; each poll
	// costs one query per priority. 0 means 1s.
	PollInterval time.Duration
	// MaxTimeout is the longest handler timeout in use. Jobs running longer
	// than this plus a minute are assumed stuck and redelivered. 0 means 1h.
	MaxTimeout time.Duration
	// Logger receives River's logs. Nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) withDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = 16
	}
	if c.Weights == nil {
		c.Weights = queue.DefaultWeights
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.MaxTimeout == 0 {
		c.MaxTimeout = time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	if c.Path == "" {
		return errors.New("sqlitequeue: Path is required")
	}
	if c.Concurrency < 1 {
		return errors.New("sqlitequeue: Concurrency must be positive")
	}
	if c.PollInterval < time.Millisecond {
		return errors.New("sqlitequeue: PollInterval must be at least 1ms")
	}
	return queue.CheckWeights(c.Weights)
}

// Queue is a queue.Queue on River and SQLite.
type Queue struct {
	cfg    Config
	db     *sql.DB
	client *river.Client[*sql.Tx]
	worker *taskWorker
}

var _ queue.Queue = (*Queue)(nil)

// taskArgs is the River job: it only points at the task row.
type taskArgs struct {
	ID        string `json:"id" river:"unique"`
	Type      string `json:"type"`
	TimeoutMS int64  `json:"timeout_ms"`
}

func (taskArgs) Kind() string { return "aether_task" }

type taskWorker struct {
	river.WorkerDefaults[taskArgs]
	handler queue.Handler
	slots   *queue.Slots
	limit   time.Duration // Config.MaxTimeout
}

// Timeout implements river.Worker: River's bound on a job is the longest
// task timeout (Config.MaxTimeout), which its stuck-job rescuer also goes
// by (-1 would turn the rescuer off). Work applies the task's own timeout
// once the job holds a slot, so time spent waiting for one never uses it up.
func (w *taskWorker) Timeout(*river.Job[taskArgs]) time.Duration { return w.limit }

// taskTimeout is how long a task may run once it holds a slot.
func taskTimeout(job *river.Job[taskArgs]) time.Duration {
	if job.Args.TimeoutMS > 0 {
		return time.Duration(job.Args.TimeoutMS) * time.Millisecond
	}
	return 30 * time.Minute
}

func (w *taskWorker) NextRetry(job *river.Job[taskArgs]) time.Time {
	d := queue.Backoff(job.Attempt)
	return time.Now().Add(d + rand.N(d/4+1))
}

// Work runs the handler once the job holds one of the worker's slots: River
// limits running jobs per queue only, and a priority's shared and own queue
// share its slots.
func (w *taskWorker) Work(ctx context.Context, job *river.Job[taskArgs]) error {
	release, err := w.slots.Acquire(ctx, queue.PriorityOf(job.Queue))
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := context.WithTimeout(ctx, taskTimeout(job))
	defer cancel()
	err = w.handler(ctx, &queue.Delivery{ID: job.Args.ID, Type: job.Args.Type, Attempt: job.Attempt, MaxAttempts: job.MaxAttempts})
	if err != nil && queue.IsPermanent(err) {
		return river.JobCancel(err)
	}
	return err
}

// pollOnlyDriver runs River on SQLite without a listener. riversqlite's
// listener polls a notification table every 50ms (not configurable), which
// would floor pickup latency there; without a listener River wakes the local
// producer directly on insert, and every enqueue in embedded mode is local.
// This is River's regular poll-only path (as with riverdatabasesql).
type pollOnlyDriver struct{ *riversqlite.Driver }

func (pollOnlyDriver) SupportsListener() bool     { return false }
func (pollOnlyDriver) SupportsListenNotify() bool { return false }

// New opens (creating and migrating) the queue file. Call Start to deliver.
func New(ctx context.Context, cfg Config) (*Queue, error) {
	cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// NORMAL, not FULL: a message is a copy of a task row, and the reconciler
	// re-sends pending rows, so a commit lost to power failure costs latency,
	// not work. It removes fsync stalls from every enqueue and completion.
	db, err := sqlite.OpenDB(cfg.Path, sqlite.SyncNormal)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1) // River on SQLite: one connection avoids SQLITE_BUSY between its loops
	driver := pollOnlyDriver{riversqlite.New(db)}
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: cfg.Logger})
	if err == nil {
		_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate queue %s: %w", cfg.Path, err)
	}
	q := &Queue{cfg: cfg, db: db, worker: &taskWorker{slots: queue.NewSlots(cfg.Concurrency, cfg.Weights), limit: cfg.MaxTimeout}}
	workers := river.NewWorkers()
	river.AddWorker(workers, q.worker)
	// Each River queue may fetch as many jobs as its priority may run; the
	// slots bound them all together to Concurrency.
	caps := queue.Caps(cfg.Concurrency, cfg.Weights)
	queues := map[string]river.QueueConfig{}
	for name := range queue.ConsumedQueues(cfg.WorkerID, cfg.Weights) {
		queues[name] = river.QueueConfig{MaxWorkers: caps[queue.PriorityOf(name)]}
	}
	q.client, err = river.NewClient(driver, &river.Config{
		FetchCooldown:        time.Millisecond, // debounce of insert-triggered fetches
		FetchPollInterval:    cfg.PollInterval,
		JobTimeout:           -1, // per job, from taskWorker.Timeout
		Logger:               cfg.Logger.With("component", "queue"),
		Queues:               queues,
		RescueStuckJobsAfter: cfg.MaxTimeout + time.Minute,
		Workers:              workers,
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("river client: %w", err)
	}
	return q, nil
}

// Enqueue implements queue.Queue.
func (q *Queue) Enqueue(ctx context.Context, msg *queue.Message) error {
	prio := msg.Priority
	if prio == "" {
		prio = queue.PriorityDefault
	}
	if _, ok := q.cfg.Weights[prio]; !ok {
		return fmt.Errorf("sqlitequeue: unknown priority %q", prio)
	}
	_, err := q.client.Insert(ctx, taskArgs{ID: msg.ID, Type: msg.Type, TimeoutMS: msg.Timeout.Milliseconds()}, &river.InsertOpts{
		MaxAttempts: msg.MaxRetries + 1,
		Queue:       queue.QueueName(prio, msg.Worker),
		UniqueOpts:  river.UniqueOpts{ByArgs: true, ByState: allStates},
	})
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", msg.ID, err)
	}
	return nil
}

// allStates makes an ID unique forever, not just while queued: a message
// that already completed is not run again when re-enqueued.
var allStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStateCancelled, rivertype.JobStateCompleted, rivertype.JobStateDiscarded,
	rivertype.JobStatePending, rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStateScheduled,
}

// Start implements queue.Queue. Jobs left running by a dead process are made
// available again first.
func (q *Queue) Start(ctx context.Context, h queue.Handler) error {
	res, err := q.db.ExecContext(ctx, `UPDATE river_job SET state = 'available' WHERE state = 'running'`)
	if err != nil {
		return fmt.Errorf("recover interrupted jobs: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		q.cfg.Logger.InfoContext(ctx, "redelivering jobs interrupted by a previous stop", slog.Int64("jobs", n))
	}
	q.worker.handler = h
	return q.client.Start(context.WithoutCancel(ctx))
}

// Stop implements queue.Queue.
func (q *Queue) Stop(ctx context.Context) error {
	if q.worker.handler != nil {
		// Graceful first; when ctx ends, cancel running handlers so their jobs
		// go back to the queue instead of being cut off mid-way.
		if err := q.client.Stop(ctx); err != nil && ctx.Err() == nil {
			return err
		}
		if ctx.Err() != nil {
			hard, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			q.client.StopAndCancel(hard)
		}
	}
	return q.db.Close()
}

// Ping implements queue.Queue.
func (q *Queue) Ping(ctx context.Context) error { return q.db.PingContext(ctx) }

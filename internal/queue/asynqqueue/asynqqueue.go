// Package asynqqueue is the distributed queue.Queue: Asynq on Redis. Message
// IDs are Asynq task IDs, so enqueue is idempotent for as long as Redis keeps
// the task (Retention); past that, handlers are idempotent anyway because the
// task row in the store is the source of truth.
//
// Redis should run with appendonly yes and maxmemory-policy noeviction (see
// docs/DISTRIBUTED.md): an evicted or flushed message is re-sent by the
// worker's reconciler, which costs latency, not work.
package asynqqueue

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/aetherium/aetherium/internal/queue"
)

// Config configures a Queue.
type Config struct {
	// Addr is the Redis address (host:port). Required.
	Addr string
	// WorkerID is the worker this instance serves: it consumes messages for
	// any worker and those routed to WorkerID. Empty means only the former.
	WorkerID string
	// Password and DB select the Redis database; zero values mean none and 0.
	Password string
	DB       int
	// TLS, when set, connects to Redis over TLS with this configuration;
	// nil means plain TCP.
	TLS *tls.Config
	// Concurrency is the number of handlers running at once; 0 means 16.
	Concurrency int
	// Weights is each priority's share; nil means queue.DefaultWeights.
	Weights map[string]int
	// PollInterval is how often an idle server asks Redis for work (Asynq's
	// TaskCheckInterval, 1s by default in Asynq). It is the floor of pickup
	// latency and costs one Redis script call per interval per server while
	// idle. 0 means 5ms (≈200 calls/s per idle worker).
	PollInterval time.Duration
	// Retention keeps finished messages so re-enqueuing their ID is a no-op;
	// 0 means 24h.
	Retention time.Duration
	// ShutdownTimeout is how long Stop lets running handlers finish before
	// handing their messages back; 0 means 30s.
	ShutdownTimeout time.Duration
	// Logger receives Asynq's logs; nil means slog.Default().
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
		c.PollInterval = 5 * time.Millisecond
	}
	if c.Retention == 0 {
		c.Retention = 24 * time.Hour
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	if c.Addr == "" {
		return errors.New("asynqqueue: Addr is required")
	}
	return queue.CheckWeights(c.Weights)
}

// Queue is a queue.Queue on Asynq. It is safe for concurrent use.
type Queue struct {
	cfg    Config
	redis  asynq.RedisClientOpt
	client *asynq.Client

	mu     sync.Mutex
	server *asynq.Server
}

var _ queue.Queue = (*Queue)(nil)

// New returns a Queue. It does not contact Redis; Ping does.
func New(cfg Config) (*Queue, error) {
	cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := asynq.RedisClientOpt{Addr: cfg.Addr, Password: cfg.Password, DB: cfg.DB, TLSConfig: cfg.TLS}
	return &Queue{cfg: cfg, redis: r, client: asynq.NewClient(r)}, nil
}

// payload is the Asynq task body: the message, so a delivery can be
// reconstructed without the store.
type payload struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	TimeoutMS int64  `json:"timeout_ms"`
}

// Enqueue implements queue.Queue.
func (q *Queue) Enqueue(ctx context.Context, msg *queue.Message) error {
	prio := msg.Priority
	if prio == "" {
		prio = queue.PriorityDefault
	}
	if _, ok := q.cfg.Weights[prio]; !ok {
		return fmt.Errorf("asynqqueue: unknown priority %q", prio)
	}
	timeout := msg.Timeout
	if timeout == 0 {
		timeout = 30 * time.Minute
	}
	b, _ := json.Marshal(payload{ID: msg.ID, Type: msg.Type, TimeoutMS: timeout.Milliseconds()})
	// Asynq keeps timeouts in whole seconds; the handler enforces the exact
	// one and Asynq's, rounded up, is the backstop.
	_, err := q.client.EnqueueContext(ctx, asynq.NewTask(msg.Type, b),
		asynq.TaskID(msg.ID), asynq.Queue(queue.QueueName(prio, msg.Worker)), asynq.MaxRetry(msg.MaxRetries),
		asynq.Timeout(timeout.Truncate(time.Second)+time.Second), asynq.Retention(q.cfg.Retention))
	if errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", msg.ID, err)
	}
	return nil
}

// Start implements queue.Queue. Messages of a server that died are
// redelivered by Asynq once their lease expires (about 30s).
func (q *Queue) Start(ctx context.Context, h queue.Handler) error {
	srv := asynq.NewServer(q.redis, asynq.Config{
		Concurrency:              q.cfg.Concurrency,
		Queues:                   queue.ConsumedQueues(q.cfg.WorkerID, q.cfg.Weights),
		TaskCheckInterval:        q.cfg.PollInterval,
		DelayedTaskCheckInterval: time.Second,
		ShutdownTimeout:          q.cfg.ShutdownTimeout,
		RetryDelayFunc: func(n int, err error, t *asynq.Task) time.Duration {
			d := queue.Backoff(n + 1)
			return d + rand.N(d/4+1)
		},
		Logger:   slogAdapter{q.cfg.Logger.With("component", "queue")},
		LogLevel: asynq.WarnLevel,
	})
	err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		var p payload
		if err := json.Unmarshal(t.Payload(), &p); err != nil {
			return fmt.Errorf("bad message: %v: %w", err, asynq.SkipRetry)
		}
		if p.TimeoutMS > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(p.TimeoutMS)*time.Millisecond)
			defer cancel()
		}
		retried, _ := asynq.GetRetryCount(ctx)
		maxRetry, _ := asynq.GetMaxRetry(ctx)
		err := h(ctx, &queue.Delivery{ID: p.ID, Type: p.Type, Attempt: retried + 1, MaxAttempts: maxRetry + 1})
		if err != nil && queue.IsPermanent(err) {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		return err
	}))
	if err != nil {
		return fmt.Errorf("asynq server: %w", err)
	}
	q.mu.Lock()
	q.server = srv
	q.mu.Unlock()
	return nil
}

// Stop implements queue.Queue. Asynq waits up to ShutdownTimeout for running
// handlers, then cancels them and puts their messages back in Redis.
func (q *Queue) Stop(ctx context.Context) error {
	q.mu.Lock()
	srv := q.server
	q.server = nil
	q.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
	}
	return q.client.Close()
}

// Ping implements queue.Queue.
func (q *Queue) Ping(ctx context.Context) error { return q.client.Ping() }

// slogAdapter gives Asynq an slog logger.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a slogAdapter) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a slogAdapter) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a slogAdapter) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a slogAdapter) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }

// Package queue is the asynchronous task queue seen by the daemon. A message
// only names a task row in the store (the source of truth); the queue's job is
// to deliver it to a handler at least once, by priority, with retries.
//
// Implementations: queue/sqlitequeue (embedded, River on SQLite) and, later,
// queue/asynqqueue. Both pass queuetest.Run.
package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Priorities, highest first. Queues are served by weight, not strictly: a
// flood of critical work slows low-priority work but does not starve it
// (see Slots and Caps).
const (
	PriorityCritical = "critical"
	PriorityHigh     = "high"
	PriorityDefault  = "default"
	PriorityLow      = "low"
)

// Priorities lists every priority, highest first.
var Priorities = []string{PriorityCritical, PriorityHigh, PriorityDefault, PriorityLow}

// DefaultWeights is the share of workers each priority gets by default.
var DefaultWeights = map[string]int{PriorityCritical: 6, PriorityHigh: 3, PriorityDefault: 2, PriorityLow: 1}

// Queue delivers messages to a handler. Implementations are safe for
// concurrent use.
type Queue interface {
	// Enqueue adds a message. It is idempotent by Message.ID: enqueuing an ID
	// that is already queued, running or finished does nothing and returns nil.
	Enqueue(ctx context.Context, msg *Message) error
	// Start begins delivering messages to h until Stop. It returns once
	// delivery has started. Messages that were being handled when a previous
	// process died are delivered again.
	Start(ctx context.Context, h Handler) error
	// Stop stops fetching, waits for running handlers until ctx is done, then
	// cancels them; their messages are delivered again later. Stop is
	// idempotent and safe before Start.
	Stop(ctx context.Context) error
	// Ping reports whether the queue's backend is reachable.
	Ping(ctx context.Context) error
}

// Message is one unit of work to deliver.
type Message struct {
	// ID identifies the message; it is the task row's UUID.
	ID string
	// Type names the handler's work ("vm:create").
	Type string
	// Priority is one of the Priority constants; empty means default.
	Priority string
	// MaxRetries is how many times a failed delivery is retried; 0 means none.
	MaxRetries int
	// Timeout cancels a handler's context after this long; 0 means 30 minutes.
	Timeout time.Duration
	// Worker routes the message to the queue instance started with that
	// WorkerID (the host that owns the sandbox); empty means any worker.
	Worker string
}

// QueueName is the backend queue a message of priority prio for worker goes
// to: the priority itself for any worker, else the priority and the worker's
// ID made safe for every backend (lowercase letters, digits, '-', '_').
func QueueName(prio, worker string) string {
	if worker == "" {
		return prio
	}
	safe := make([]byte, 0, len(worker))
	for _, c := range []byte(strings.ToLower(worker)) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' {
			safe = append(safe, c)
		} else {
			safe = append(safe, '_')
		}
	}
	return prio + "_w_" + string(safe)
}

// ConsumedQueues lists the queues an instance for workerID serves, with
// weights: every shared priority queue and the worker's own.
func ConsumedQueues(workerID string, weights map[string]int) map[string]int {
	out := make(map[string]int, 2*len(Priorities))
	for _, p := range Priorities {
		out[QueueName(p, "")] = weights[p]
		if workerID != "" {
			out[QueueName(p, workerID)] = weights[p]
		}
	}
	return out
}

// Delivery is one attempt at handling a message.
type Delivery struct {
	ID   string
	Type string
	// Attempt counts from 1; an attempt interrupted by a crash counts too.
	Attempt int
	// MaxAttempts is MaxRetries+1.
	MaxAttempts int
}

// LastAttempt reports whether a failure now is final.
func (d *Delivery) LastAttempt() bool { return d.Attempt >= d.MaxAttempts }

// Handler handles one delivery. Returning nil completes the message; an error
// retries it with backoff until attempts run out; an error wrapped by
// Permanent completes it without retry. Handlers must be idempotent.
type Handler func(ctx context.Context, d *Delivery) error

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error { return &permanentError{err: err} }

// IsPermanent reports whether err was marked by Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// Backoff is the delay before retry number attempt (1-based): 1s, 2s, 4s…
// capped at one minute. Implementations add their own jitter.
func Backoff(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	if attempt > 7 {
		return time.Minute
	}
	return time.Second << (attempt - 1)
}

// CheckWeights reports a priority without a positive weight.
func CheckWeights(weights map[string]int) error {
	for _, p := range Priorities {
		if weights[p] < 1 {
			return fmt.Errorf("queue: weight of priority %q must be at least 1", p)
		}
	}
	return nil
}

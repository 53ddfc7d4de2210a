// Package events carries notifications of state changes (tasks and
// sandboxes) to whoever listens: the SSE endpoint, CLI watchers, long-polls.
// Events are best-effort hints; the store stays the source of truth, so a
// subscriber that misses one re-reads the store.
//
// Implementations: Local (one process) and redisbus (Redis pub/sub, across
// processes). Both pass eventstest.Run. Store wraps a store.Store so every
// committed state change is published from one place.
package events

import (
	"context"
	"sync"
	"time"
)

// Kinds of events.
const (
	KindTask = "task"
	KindVM   = "vm"
)

// Event is one state change.
type Event struct {
	// Kind is KindTask or KindVM.
	Kind string `json:"kind"`
	// Status is the new status of the task or sandbox.
	Status string `json:"status"`
	// TaskType is the task's type (vm:create…), for task events.
	TaskType string `json:"task_type,omitempty"`
	TaskID   string `json:"task_id,omitempty"`
	VMID     string `json:"vm_id,omitempty"`
	// ProjectID is the project the row belongs to.
	ProjectID string    `json:"project_id"`
	Error     string    `json:"error,omitempty"`
	Progress  string    `json:"progress,omitempty"`
	Time      time.Time `json:"time"`
}

// Bus publishes events to every current subscriber. Implementations are
// safe for concurrent use.
type Bus interface {
	// Publish sends e to every subscriber, in every process sharing the bus.
	Publish(ctx context.Context, e *Event) error
	// Subscribe delivers events published after it returns, until ctx ends;
	// then the channel is closed. A subscriber that falls more than its
	// buffer behind loses events rather than slowing publishers.
	Subscribe(ctx context.Context) (<-chan *Event, error)
	// Close stops the bus and closes every subscription. It is idempotent.
	Close() error
}

// subscriberBuffer is how many events a slow subscriber may lag by.
const subscriberBuffer = 256

// Local is the in-process Bus.
type Local struct {
	mu     sync.Mutex
	subs   map[chan *Event]struct{}
	closed bool
}

var _ Bus = (*Local)(nil)

// NewLocal returns an in-process bus.
func NewLocal() *Local { return &Local{subs: map[chan *Event]struct{}{}} }

// Publish implements Bus. It never blocks on a slow subscriber.
func (l *Local) Publish(ctx context.Context, e *Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ch := range l.subs {
		select {
		case ch <- e:
		default: // lagging subscriber: it re-reads the store
		}
	}
	return nil
}

// Subscribe implements Bus.
func (l *Local) Subscribe(ctx context.Context) (<-chan *Event, error) {
	ch := make(chan *Event, subscriberBuffer)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		close(ch)
		return ch, nil
	}
	l.subs[ch] = struct{}{}
	l.mu.Unlock()
	go func() {
		<-ctx.Done()
		l.mu.Lock()
		if _, ok := l.subs[ch]; ok {
			delete(l.subs, ch)
			close(ch)
		}
		l.mu.Unlock()
	}()
	return ch, nil
}

// Close implements Bus.
func (l *Local) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for ch := range l.subs {
		delete(l.subs, ch)
		close(ch)
	}
	return nil
}

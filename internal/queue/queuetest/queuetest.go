// Package queuetest is the conformance suite every queue.Queue must pass.
package queuetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/queue"
)

// Concurrency is the handler concurrency an Opener's queues must have.
const Concurrency = 4

// Opener opens a queue on one backend for the worker workerID (empty: a
// worker without own messages), with Concurrency handlers. Calling it again opens the same backend
// anew, as a restarted process (or another worker) would.
type Opener func(t *testing.T, workerID string) queue.Queue

// Run runs the suite. newBackend returns an Opener for a fresh, empty backend.
func Run(t *testing.T, newBackend func(t *testing.T) Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"DeliversEveryPriority", testDeliver},
		{"EnqueueIsIdempotent", testIdempotent},
		{"RetriesThenSucceeds", testRetry},
		{"StopsAfterMaxRetries", testMaxRetries},
		{"PermanentErrorIsNotRetried", testPermanent},
		{"TimeoutCancelsHandler", testTimeout},
		{"StopRedeliversInterrupted", testRedeliver},
		{"RoutesToOwningWorker", testRouting},
		{"BurstUsesEverySlot", testBurst},
		{"WaitingForASlotKeepsTheTimeout", testSlotWait},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newBackend(t))
		})
	}
}

// recorder is a handler that records deliveries and answers with fn.
type recorder struct {
	mu   sync.Mutex
	got  []queue.Delivery
	seen chan queue.Delivery
	fn   func(ctx context.Context, d *queue.Delivery) error
}

func newRecorder(fn func(ctx context.Context, d *queue.Delivery) error) *recorder {
	return &recorder{seen: make(chan queue.Delivery, 100), fn: fn}
}

func (r *recorder) handle(ctx context.Context, d *queue.Delivery) error {
	r.mu.Lock()
	r.got = append(r.got, *d)
	r.mu.Unlock()
	r.seen <- *d
	if r.fn == nil {
		return nil
	}
	return r.fn(ctx, d)
}

func (r *recorder) wait(t *testing.T, within time.Duration) queue.Delivery {
	t.Helper()
	select {
	case d := <-r.seen:
		return d
	case <-time.After(within):
		t.Fatalf("no delivery within %s", within)
		return queue.Delivery{}
	}
}

func (r *recorder) none(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case d := <-r.seen:
		t.Fatalf("unexpected delivery %+v", d)
	case <-time.After(within):
	}
}

func start(t *testing.T, open Opener, r *recorder) queue.Queue {
	return startAs(t, open, "", r)
}

func startAs(t *testing.T, open Opener, workerID string, r *recorder) queue.Queue {
	t.Helper()
	q := open(t, workerID)
	if err := q.Start(context.Background(), r.handle); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		q.Stop(ctx)
	})
	return q
}

func enqueue(t *testing.T, q queue.Queue, m *queue.Message) {
	t.Helper()
	if err := q.Enqueue(context.Background(), m); err != nil {
		t.Fatalf("Enqueue(%+v): %v", m, err)
	}
}

func testDeliver(t *testing.T, open Opener) {
	r := newRecorder(nil)
	q := start(t, open, r)
	want := map[string]bool{}
	for _, p := range queue.Priorities {
		id := uuid.NewString()
		want[id] = true
		enqueue(t, q, &queue.Message{ID: id, Type: "t:" + p, Priority: p})
	}
	for range queue.Priorities {
		d := r.wait(t, 10*time.Second)
		if !want[d.ID] || d.Attempt != 1 || d.Type == "" {
			t.Errorf("delivery %+v", d)
		}
		delete(want, d.ID)
	}
}

func testIdempotent(t *testing.T, open Opener) {
	r := newRecorder(nil)
	q := start(t, open, r)
	id := uuid.NewString()
	enqueue(t, q, &queue.Message{ID: id, Type: "once"})
	enqueue(t, q, &queue.Message{ID: id, Type: "once"})
	r.wait(t, 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	enqueue(t, q, &queue.Message{ID: id, Type: "once"}) // after completion too
	r.none(t, time.Second)
}

func testRetry(t *testing.T, open Opener) {
	r := newRecorder(func(ctx context.Context, d *queue.Delivery) error {
		if d.Attempt == 1 {
			return errors.New("transient")
		}
		return nil
	})
	q := start(t, open, r)
	enqueue(t, q, &queue.Message{ID: uuid.NewString(), Type: "flaky", MaxRetries: 3})
	first := r.wait(t, 10*time.Second)
	second := r.wait(t, 10*time.Second)
	if first.Attempt != 1 || second.Attempt != 2 || second.MaxAttempts != 4 || second.LastAttempt() {
		t.Errorf("attempts %+v then %+v", first, second)
	}
	r.none(t, 2*time.Second)
}

func testMaxRetries(t *testing.T, open Opener) {
	r := newRecorder(func(ctx context.Context, d *queue.Delivery) error { return errors.New("always") })
	q := start(t, open, r)
	enqueue(t, q, &queue.Message{ID: uuid.NewString(), Type: "broken", MaxRetries: 1})
	r.wait(t, 10*time.Second)
	if d := r.wait(t, 10*time.Second); !d.LastAttempt() {
		t.Errorf("second attempt %+v is not the last", d)
	}
	r.none(t, 3*time.Second)
}

func testPermanent(t *testing.T, open Opener) {
	r := newRecorder(func(ctx context.Context, d *queue.Delivery) error {
		return queue.Permanent(errors.New("bad input"))
	})
	q := start(t, open, r)
	enqueue(t, q, &queue.Message{ID: uuid.NewString(), Type: "bad", MaxRetries: 5})
	r.wait(t, 10*time.Second)
	r.none(t, 2500*time.Millisecond)
}

func testTimeout(t *testing.T, open Opener) {
	cancelled := make(chan time.Duration, 1)
	r := newRecorder(func(ctx context.Context, d *queue.Delivery) error {
		start := time.Now()
		<-ctx.Done()
		cancelled <- time.Since(start)
		return ctx.Err()
	})
	q := start(t, open, r)
	enqueue(t, q, &queue.Message{ID: uuid.NewString(), Type: "slow", Timeout: 300 * time.Millisecond})
	r.wait(t, 10*time.Second)
	select {
	case d := <-cancelled:
		if d > 5*time.Second {
			t.Errorf("handler cancelled after %s, want ~300ms", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler context never cancelled")
	}
}

func testRedeliver(t *testing.T, open Opener) {
	var first sync.Once
	r := newRecorder(func(ctx context.Context, d *queue.Delivery) error {
		blocked := false
		first.Do(func() { blocked = true })
		if blocked {
			<-ctx.Done() // still working when the process stops
			return ctx.Err()
		}
		return nil
	})
	q := open(t, "")
	if err := q.Start(context.Background(), r.handle); err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	enqueue(t, q, &queue.Message{ID: id, Type: "long", MaxRetries: 2})
	r.wait(t, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	q.Stop(ctx)

	start(t, open, r)
	if d := r.wait(t, 15*time.Second); d.ID != id {
		t.Errorf("after restart got %+v, want %s again", d, id)
	}
}

// testRouting runs two workers on one backend: a message for one is never
// handled by the other, and an unrouted one is handled exactly once.
func testRouting(t *testing.T, open Opener) {
	ra, rb := newRecorder(nil), newRecorder(nil)
	qa := startAs(t, open, "worker-a", ra)
	startAs(t, open, "Worker.B", rb)
	for range 5 {
		enqueue(t, qa, &queue.Message{ID: uuid.NewString(), Type: "for-b", Worker: "Worker.B"})
	}
	for range 5 {
		if d := rb.wait(t, 10*time.Second); d.Type != "for-b" {
			t.Errorf("worker b got %+v", d)
		}
	}
	ra.none(t, 500*time.Millisecond)
	enqueue(t, qa, &queue.Message{ID: uuid.NewString(), Type: "any"})
	select {
	case <-ra.seen:
		rb.none(t, 500*time.Millisecond)
	case <-rb.seen:
		ra.none(t, 500*time.Millisecond)
	case <-time.After(10 * time.Second):
		t.Fatal("unrouted message not delivered")
	}
}

// testBurst: a burst of the highest priority routed to one worker (a
// fleet's deletes) runs Concurrency at once. The embedded queue once gave
// each River queue its weight's share of half the slots, 1 of 4 here.
func testBurst(t *testing.T, open Opener) {
	hold := make(chan struct{})
	r := newRecorder(func(ctx context.Context, d *queue.Delivery) error { return held(ctx, hold) })
	q := startAs(t, open, "worker-a", r)
	defer close(hold)
	for range Concurrency {
		enqueue(t, q, &queue.Message{ID: uuid.NewString(), Type: "delete", Priority: queue.PriorityCritical, Worker: "worker-a"})
	}
	for range Concurrency {
		r.wait(t, 10*time.Second)
	}
}

// testSlotWait: a message's timeout counts from when its handler starts,
// not from when the backend took it and it waited for a handler slot. The
// embedded queue fetches a priority's shared and own queue separately and
// shares the slots after (queue.Slots); it once started the timeout at the
// fetch, so a task queued behind a full worker failed before it ran.
func testSlotWait(t *testing.T, open Opener) {
	hold := make(chan struct{})
	timedCtx := make(chan error, 1)
	r := newRecorder(func(ctx context.Context, d *queue.Delivery) error {
		if d.Type == "timed" {
			timedCtx <- ctx.Err()
			return nil
		}
		return held(ctx, hold)
	})
	q := startAs(t, open, "worker-a", r)
	for range Concurrency { // every slot, from the shared queue
		enqueue(t, q, &queue.Message{ID: uuid.NewString(), Type: "hold", Priority: queue.PriorityCritical})
	}
	for range Concurrency {
		r.wait(t, 10*time.Second)
	}
	enqueue(t, q, &queue.Message{ID: uuid.NewString(), Type: "timed", Priority: queue.PriorityCritical,
		Worker: "worker-a", Timeout: 300 * time.Millisecond})
	time.Sleep(time.Second) // the timed message waits for a slot longer than its timeout
	close(hold)
	select {
	case err := <-timedCtx:
		if err != nil {
			t.Errorf("the timed handler started with its context already ended (%v): the slot wait counted against its timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the timed message was never handled")
	}
}

// held is a handler's work that lasts until hold closes or ctx ends.
func held(ctx context.Context, hold <-chan struct{}) error {
	select {
	case <-hold:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

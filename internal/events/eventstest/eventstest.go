// Package eventstest is the conformance suite every events.Bus must pass.
package eventstest

import (
	"context"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/events"
)

// Run runs the suite. newBus returns buses that share one medium: events
// published on any of them reach subscribers of all (as across processes).
func Run(t *testing.T, newBus func(t *testing.T) events.Bus) {
	t.Run("FanOutInOrder", func(t *testing.T) {
		t.Parallel()
		pub, sub := newBus(t), newBus(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		a, err := sub.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b, err := pub.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range []string{"pending", "running", "succeeded"} {
			if err := pub.Publish(ctx, &events.Event{Kind: events.KindTask, TaskID: "t1", Status: st}); err != nil {
				t.Fatal(err)
			}
		}
		for name, ch := range map[string]<-chan *events.Event{"other bus": a, "same bus": b} {
			for _, want := range []string{"pending", "running", "succeeded"} {
				select {
				case e := <-ch:
					if e.Status != want || e.TaskID != "t1" {
						t.Errorf("%s: got %+v, want status %s", name, e, want)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("%s: no event %s", name, want)
				}
			}
		}
	})
	t.Run("CancelClosesSubscription", func(t *testing.T) {
		t.Parallel()
		bus := newBus(t)
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := bus.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		select {
		case _, ok := <-ch:
			for ok {
				_, ok = <-ch
			}
		case <-time.After(5 * time.Second):
			t.Fatal("subscription not closed after cancel")
		}
		if err := bus.Publish(context.Background(), &events.Event{Kind: events.KindVM}); err != nil {
			t.Errorf("publish with no subscribers: %v", err)
		}
	})
	t.Run("SlowSubscriberDoesNotBlockPublisher", func(t *testing.T) {
		t.Parallel()
		bus := newBus(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if _, err := bus.Subscribe(ctx); err != nil { // never read
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			for range 2000 {
				bus.Publish(ctx, &events.Event{Kind: events.KindTask})
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("publisher blocked by a subscriber that does not read")
		}
	})
}

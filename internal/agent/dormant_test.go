package agent

import (
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// TestDormancy: the agent goes dormant only with no connection, no stream
// still ending and no tracked process; streams ending after their
// connection delay it, they do not cancel it.
func TestDormancy(t *testing.T) {
	t.Parallel()
	var streams, tracks atomic.Bool
	slept := make(chan struct{}, 10)
	d := newDormancy(20*time.Millisecond, func() error { slept <- struct{}{}; return nil }, streams.Load, tracks.Load, slog.New(slog.DiscardHandler))
	sleeps := func(within time.Duration) bool {
		select {
		case <-slept:
			return true
		case <-time.After(within):
			return false
		}
	}
	d.connBegin()
	if sleeps(200 * time.Millisecond) {
		t.Fatal("went dormant with a connection open")
	}
	streams.Store(true)
	d.connEnd()
	if sleeps(200 * time.Millisecond) {
		t.Fatal("went dormant with a stream still ending")
	}
	streams.Store(false)
	if !sleeps(5 * time.Second) {
		t.Fatal("not dormant 5 s after the last stream ended")
	}
	tracks.Store(true)
	d.connBegin()
	d.connEnd()
	if sleeps(200 * time.Millisecond) {
		t.Fatal("went dormant with a tracked process")
	}
	if newDormancy(time.Millisecond, nil, streams.Load, tracks.Load, nil) != nil || newDormancy(0, func() error { return nil }, streams.Load, tracks.Load, nil) != nil {
		t.Error("dormancy without a sleep or a wait")
	}
}

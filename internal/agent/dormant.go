package agent

import (
	"log/slog"
	"sync"
	"time"
)

// dormancy calls Config.Dormant once the server has gone Config.DormantAfter
// with no host connection, no stream still being served and no tracked
// process: an idle sandbox then needs no agent in memory (the Docker runtime
// swaps it for aether-waiter, which starts it again on the next connection).
//
// A tracked process keeps the agent: its output lives only here. An ended
// one leaves the table only to make room for another, so a sandbox that
// ran one stays awake.
type dormancy struct {
	mu      sync.Mutex // held from the decision through Dormant, so no connection starts meanwhile
	conns   int
	after   time.Duration
	timer   *time.Timer
	streams func() bool // a stream is still being served
	tracks  func() bool // the process table holds a process
	sleep   func() error
	log     *slog.Logger
}

// newDormancy returns nil when sleep is nil or after is not positive: the
// agent never goes dormant. Otherwise the wait starts now, so an agent no
// host ever connects to goes dormant too.
func newDormancy(after time.Duration, sleep func() error, streams, tracks func() bool, log *slog.Logger) *dormancy {
	if sleep == nil || after <= 0 {
		return nil
	}
	d := &dormancy{after: after, streams: streams, tracks: tracks, sleep: sleep, log: log}
	d.timer = time.AfterFunc(after, d.fire)
	return d
}

// connBegin marks a host connection open; it waits while the agent is
// going dormant (the exec then closes the connection, and the host's
// connect tries again, which wakes the waiter).
func (d *dormancy) connBegin() {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.conns++
	d.timer.Stop()
}

// connEnd marks a host connection closed and, when it was the last, starts
// the wait.
func (d *dormancy) connEnd() {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conns--; d.conns == 0 {
		d.timer.Reset(d.after)
	}
}

func (d *dormancy) fire() {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.conns > 0:
		return
	case d.streams():
		// A closed connection's streams are still ending: wait again.
		d.timer.Reset(d.after)
		return
	case d.tracks():
		// The table only empties to make room for another process, which
		// needs a connection, whose end starts the wait again.
		return
	}
	d.log.Info("agent going dormant", slog.Duration("idle", d.after))
	if err := d.sleep(); err != nil {
		d.log.Warn("agent cannot go dormant; it stays", slog.Any("err", err))
	}
}

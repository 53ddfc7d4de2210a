package agent

import (
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// trimAbove is the heap (live and dead objects, and free pages not yet
// returned) beyond which an idle agent returns its free memory. A freshly
// started agent holds about 0.7 MiB and stays below it: its first garbage
// collection would cost more memory (mark workers, GC metadata) than it
// frees. After commands, which leave up to the collector's 4 MiB goal of
// garbage, it is above.
const trimAbove = 1 << 20

// trimmer returns the agent's free heap to the OS once the server has had
// no open stream for a while. Go collects at a 4 MiB heap at the earliest
// and then keeps the freed pages: an idle sandbox whose agent relayed some
// output would hold several MiB of host memory until it ran again. The
// trim is a forced collection (debug.FreeOSMemory) plus a scavenge, once
// per idle period, so an idle agent costs no CPU.
type trimmer struct {
	open   atomic.Int64 // streams being served
	served atomic.Int64 // streams ever opened
	timer  *time.Timer
	after  time.Duration
}

// newTrimmer returns a trimmer that trims after d without open streams;
// d < 0 never trims.
func newTrimmer(d time.Duration) *trimmer {
	t := &trimmer{after: d}
	if d >= 0 {
		t.timer = time.AfterFunc(time.Hour, t.trim)
		t.timer.Stop()
	}
	return t
}

// begin marks a stream open; end marks it served and, when it was the last,
// arms the trim.
func (t *trimmer) begin() {
	t.open.Add(1)
	t.served.Add(1)
}

func (t *trimmer) end() {
	if t.open.Add(-1) == 0 && t.timer != nil {
		t.timer.Reset(t.after)
	}
}

// trim returns free heap unless a stream is open, or the agent has served
// no more than the host's connect check (one health stream): then there is
// nothing to return, and even reading the heap's size would cost memory
// (runtime/metrics allocates about 19 KiB on first use; ReadMemStats's
// flush of the allocation caches cost an idle agent 0.29 MiB of rss).
func (t *trimmer) trim() {
	if t.open.Load() > 0 || t.served.Load() < 2 || heapHeld() < trimAbove {
		return
	}
	debug.FreeOSMemory()
}

// heapHeld is the heap memory the runtime holds from the OS: objects (live
// or not yet collected), the unused rest of their spans, and free pages
// not yet returned.
func heapHeld() uint64 {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	metrics.Read(s)
	var n uint64
	for _, v := range s {
		if v.Value.Kind() == metrics.KindUint64 {
			n += v.Value.Uint64()
		}
	}
	return n
}

package queue

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// PriorityOf is the priority of the backend queue named name (QueueName's
// inverse for the priority part).
func PriorityOf(name string) string {
	prio, _, _ := strings.Cut(name, "_w_")
	return prio
}

// Caps is how many of concurrency handler slots each priority may hold at
// once: its weight plus the weights of every lower priority, as a share of
// all weights (rounded up, at least 1). The highest priority may use every
// slot; each lower one leaves the higher ones' shares free, so long
// low-priority work (builds, long execs) never fills a worker while a burst
// of one kind (a fleet's deletes or creates) still gets far more than its
// own share.
func Caps(concurrency int, weights map[string]int) map[string]int {
	total := 0
	for _, p := range Priorities {
		total += weights[p]
	}
	caps := make(map[string]int, len(Priorities))
	below := 0
	for _, p := range slices.Backward(Priorities) {
		below += weights[p]
		caps[p] = max(1, (concurrency*below+total-1)/total)
	}
	return caps
}

// Slots shares a worker's handler slots among priorities for a backend
// whose own limits are per queue (River): at most concurrency handlers hold
// a slot at once, each priority at most its cap (Caps), and when a slot
// frees while several priorities wait, it goes to them by weight (smooth
// weighted round robin), so a flood of one priority slows the others but
// never starves them. Slots is safe for concurrent use.
type Slots struct {
	mu    sync.Mutex
	free  int
	prios map[string]*prioSlots
	order []*prioSlots // highest priority first, for a stable grant order
}

type prioSlots struct {
	weight, cap, held int
	current           int // smooth weighted round robin credit
	waiting           []*slotWaiter
}

type slotWaiter struct {
	ready   chan struct{}
	granted bool
}

// NewSlots returns concurrency slots shared by weights (see Caps).
func NewSlots(concurrency int, weights map[string]int) *Slots {
	caps := Caps(concurrency, weights)
	s := &Slots{free: concurrency, prios: make(map[string]*prioSlots, len(Priorities))}
	for _, p := range Priorities {
		ps := &prioSlots{weight: weights[p], cap: caps[p]}
		s.prios[p] = ps
		s.order = append(s.order, ps)
	}
	return s
}

// Acquire waits for a slot of priority prio and returns the function that
// gives it back (call it exactly once). It returns ctx's error if ctx ends
// first, and an error for an unknown priority.
func (s *Slots) Acquire(ctx context.Context, prio string) (release func(), err error) {
	s.mu.Lock()
	p, ok := s.prios[prio]
	if !ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("queue: unknown priority %q", prio)
	}
	release = func() { s.release(p) }
	if s.free > 0 && p.held < p.cap && len(p.waiting) == 0 {
		s.free--
		p.held++
		s.mu.Unlock()
		return release, nil
	}
	w := &slotWaiter{ready: make(chan struct{})}
	p.waiting = append(p.waiting, w)
	s.mu.Unlock()
	select {
	case <-w.ready:
		return release, nil
	case <-ctx.Done():
		s.mu.Lock()
		if w.granted {
			s.mu.Unlock()
			release()
		} else {
			p.waiting = slices.DeleteFunc(p.waiting, func(o *slotWaiter) bool { return o == w })
			s.mu.Unlock()
		}
		return nil, ctx.Err()
	}
}

func (s *Slots) release(p *prioSlots) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p.held--
	s.free++
	for s.free > 0 {
		next := s.pick()
		if next == nil {
			return
		}
		w := next.waiting[0]
		next.waiting = next.waiting[1:]
		next.held++
		s.free--
		w.granted = true
		close(w.ready)
	}
}

// pick chooses the priority that gets a free slot among those waiting
// below their cap, by smooth weighted round robin (nginx's): each
// candidate earns its weight, the richest wins and pays the candidates'
// total. Nil when none waits.
func (s *Slots) pick() *prioSlots {
	var best *prioSlots
	total := 0
	for _, p := range s.order {
		if len(p.waiting) == 0 || p.held >= p.cap {
			continue
		}
		p.current += p.weight
		total += p.weight
		if best == nil || p.current > best.current {
			best = p
		}
	}
	if best != nil {
		best.current -= total
	}
	return best
}

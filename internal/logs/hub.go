package logs

import (
	"sync"
	"sync/atomic"
)

// Hub fans records out to live subscribers. Publishing never blocks: a
// subscriber whose buffer is full misses the record, and its Dropped count
// says how many it missed. Safe for concurrent use.
type Hub struct {
	mu   sync.RWMutex
	subs map[*Subscription]struct{}
}

// NewHub returns a Hub with no subscribers.
func NewHub() *Hub { return &Hub{subs: map[*Subscription]struct{}{}} }

// Subscription receives the records matching its query as they are
// published.
type Subscription struct {
	q       Query
	c       chan Record
	dropped atomic.Uint64
	hub     *Hub
	once    sync.Once
}

// C delivers records; it is closed by Close.
func (s *Subscription) C() <-chan Record { return s.c }

// Dropped is how many matching records did not fit the buffer.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close unsubscribes and closes C. Idempotent.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.hub.mu.Lock()
		delete(s.hub.subs, s)
		close(s.c)
		s.hub.mu.Unlock()
	})
}

// Subscribe delivers published records that q.Match accepts (q's cursor,
// limit and direction are ignored) into a buffer of buf records (0 means
// 1024). The caller must Close it.
func (h *Hub) Subscribe(q Query, buf int) *Subscription {
	if buf <= 0 {
		buf = 1024
	}
	s := &Subscription{q: q, c: make(chan Record, buf), hub: h}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// Publish offers recs to every subscriber without blocking.
func (h *Hub) Publish(recs []Record) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs {
		for i := range recs {
			if !s.q.Match(&recs[i]) {
				continue
			}
			select {
			case s.c <- recs[i]:
			default:
				s.dropped.Add(1)
			}
		}
	}
}

package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/aetherium/aetherium/internal/auth"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
)

// Rate is a token bucket: PerSecond tokens refill each second, up to Burst.
type Rate struct {
	// PerSecond is the sustained rate; 0 means no limit.
	PerSecond float64
	// Burst is the bucket size; 0 means max(1, PerSecond).
	Burst int
}

// RateLimits are the per-key limits of each route class.
type RateLimits struct {
	// Default applies to every route not in another class.
	Default Rate
	// Create applies to routes that create sandboxes, templates, images
	// and jobs.
	Create Rate
	// Exec applies to routes that run commands or move files.
	Exec Rate
	// Preview applies to each preview token's requests to its preview host.
	Preview Rate
}

func (l RateLimits) of(c class) Rate {
	switch c {
	case classCreate:
		return l.Create
	case classExec:
		return l.Exec
	case classPreview:
		return l.Preview
	}
	return l.Default
}

// maxLimiters bounds the limiter map. Only authenticated keys get a
// limiter, so it holds at most (usable keys × classes) entries; past the
// bound, limiters idle for a minute are dropped (a full bucket is what a
// new limiter starts with anyway).
const maxLimiters = 10000

type limiterKey struct {
	prefix string
	class  class
}

type limiterEntry struct {
	l    *rate.Limiter
	used time.Time
}

// limiterOf returns k's bucket in m, made with mk on first use, and marks
// it used now. Making one when m holds max buckets first drops those idle
// for a minute; with hard, then any others until there is room (a fresh
// bucket is full, so only for buckets whose loss costs nothing but a
// refill). The caller holds m's lock.
func limiterOf[K comparable](m map[K]*limiterEntry, k K, now time.Time, max int, hard bool, mk func() *rate.Limiter) *limiterEntry {
	e, ok := m[k]
	if !ok {
		if len(m) >= max {
			for k, e := range m {
				if now.Sub(e.used) > time.Minute {
					delete(m, k)
				}
			}
			for k := range m {
				if !hard || len(m) < max {
					break
				}
				delete(m, k)
			}
		}
		e = &limiterEntry{l: mk()}
		m[k] = e
	}
	e.used = now
	return e
}

// limiters are the token buckets of each (key, class). Safe for concurrent use.
type limiters struct {
	cfg RateLimits
	now func() time.Time

	mu sync.Mutex
	m  map[limiterKey]*limiterEntry
}

func newLimiters(cfg RateLimits) *limiters {
	return &limiters{cfg: cfg, now: time.Now, m: map[limiterKey]*limiterEntry{}}
}

// allow takes a token of the key's bucket for class c; when there is none it
// returns false and how long until there is.
func (ls *limiters) allow(prefix string, c class) (time.Duration, bool) {
	r := ls.cfg.of(c)
	if r.PerSecond <= 0 {
		return 0, true
	}
	now := ls.now()
	k := limiterKey{prefix, c}
	ls.mu.Lock()
	e := limiterOf(ls.m, k, now, maxLimiters, false, func() *rate.Limiter {
		burst := r.Burst
		if burst == 0 {
			burst = max(1, int(r.PerSecond))
		}
		return rate.NewLimiter(rate.Limit(r.PerSecond), burst)
	})
	ls.mu.Unlock()
	res := e.l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// slots counts concurrent uses per key (event streams, long-polls) or per
// project (execs) against a bound. Safe for concurrent use.
type slots struct {
	mu sync.Mutex
	n  map[string]int
}

// take takes one of max slots of id; max 0 means no limit. It returns the
// release function, or false when all are taken.
func (s *slots) take(id string, max int) (func(), bool) {
	if max <= 0 {
		return func() {}, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[string]int{}
	}
	if s.n[id] >= max {
		return nil, false
	}
	s.n[id]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			if s.n[id]--; s.n[id] == 0 {
				delete(s.n, id)
			}
			s.mu.Unlock()
		})
	}, true
}

// quotaTTL bounds how long a project's quota is trusted without reading it
// again; a quota changed through this process applies at once.
const quotaTTL = 5 * time.Second

// quotaCache keeps projects' quotas for checks made outside the store's
// transactions (concurrent execs). Safe for concurrent use.
type quotaCache struct {
	st interface {
		ProjectGet(ctx context.Context, idOrName string) (*store.Project, error)
	}

	mu sync.Mutex
	m  map[string]quotaEntry
}

type quotaEntry struct {
	q       store.Quota
	fetched time.Time
}

func (c *quotaCache) get(ctx context.Context, projectID string) (store.Quota, error) {
	c.mu.Lock()
	e, ok := c.m[projectID]
	c.mu.Unlock()
	if ok && time.Since(e.fetched) < quotaTTL {
		return e.q, nil
	}
	p, err := c.st.ProjectGet(ctx, projectID)
	if err != nil {
		return store.Quota{}, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) > 10000 {
		c.m = map[string]quotaEntry{}
	}
	c.m[projectID] = quotaEntry{q: p.Quota, fetched: time.Now()}
	c.mu.Unlock()
	return p.Quota, nil
}

func (c *quotaCache) forget(projectID string) {
	c.mu.Lock()
	delete(c.m, projectID)
	c.mu.Unlock()
}

// takeStream takes one of the request key's Config.MaxStreams slots for an
// event stream or long-poll, or answers 429.
func (s *Server) takeStream(w http.ResponseWriter, r *http.Request) (func(), bool) {
	p := auth.FromContext(r.Context())
	if p == nil {
		return func() {}, true
	}
	release, ok := s.streamSlots.take(p.KeyPrefix, s.cfg.MaxStreams)
	if !ok {
		w.Header().Set("Retry-After", "1")
		s.writeError(w, r, rateLimited("key %s already has %d event streams and long-polls open", p.KeyPrefix, s.cfg.MaxStreams))
	}
	return release, ok
}

// takeExec takes one of the project's Quota.Execs slots for an interactive
// exec, or answers 429.
func (s *Server) takeExec(w http.ResponseWriter, r *http.Request, projectID string) (func(), bool) {
	q, err := s.quotas.get(r.Context(), projectID)
	if err != nil {
		s.writeError(w, r, err)
		return nil, false
	}
	release, ok := s.execSlots.take(projectID, q.Execs)
	if !ok {
		s.writeError(w, r, errdefs.QuotaExceeded("project quota exceeded: %d concurrent execs", q.Execs))
	}
	return release, ok
}

// liftDeadlines removes the server's read and write deadlines from a
// request that lasts as long as its client wants (exec, terminals, tails,
// proxied ports) and returns its ResponseController.
func liftDeadlines(w http.ResponseWriter) *http.ResponseController {
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	return rc
}

package api

import (
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Unknown, expired and revoked preview tokens are charged to a bucket of
// the client's address before they cost more: a client whose bucket is
// empty gets 429 before its token is looked up in the store, so random
// aep_ tokens cannot turn preview hosts into a store-load amplifier. Behind
// a reverse proxy every client shares the proxy's address, and the bucket
// becomes one global limit of failed lookups.
const (
	previewFailRate  = 1  // failed lookups refilled per second and address
	previewFailBurst = 30 // failed lookups an address may make at once
	// maxPreviewFailAddrs bounds the map; past it, addresses idle for a
	// minute are dropped, then any one (a fresh bucket is full anyway).
	maxPreviewFailAddrs = 4096
)

// previewFails are the failed-token buckets by client address. Safe for
// concurrent use.
type previewFails struct {
	now func() time.Time

	mu sync.Mutex
	m  map[string]*limiterEntry
}

func newPreviewFails() *previewFails {
	return &previewFails{now: time.Now, m: map[string]*limiterEntry{}}
}

// clientAddr is the address a request came from, without its port.
func clientAddr(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// blocked says addr has no failed lookup left, and how long until it has.
func (f *previewFails) blocked(addr string) (time.Duration, bool) {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.m[addr]
	if !ok {
		return 0, false
	}
	tokens := e.l.TokensAt(now)
	if tokens >= 1 {
		return 0, false
	}
	return time.Duration((1 - tokens) / previewFailRate * float64(time.Second)), true
}

// fail charges one failed lookup to addr.
func (f *previewFails) fail(addr string) {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	limiterOf(f.m, addr, now, maxPreviewFailAddrs, true, func() *rate.Limiter {
		return rate.NewLimiter(previewFailRate, previewFailBurst)
	}).l.AllowN(now, 1)
}

package api

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Credentials that cost a store lookup and failed (unknown, expired or
// revoked preview tokens; API keys whose row was not cached) are charged
// to a bucket of the client's address, one set of buckets per kind: a
// client whose bucket is empty gets 429 before its next credential is
// looked up, so random aep_ tokens or ae_ keys cannot turn aetherd into a
// store-load amplifier. A known key answered from the auth cache is never
// refused this way (authKey), so a client sharing an address with an
// attacker keeps working once its key is cached. Behind a reverse proxy
// every client shares the proxy's address, and the bucket becomes one
// global limit of failed lookups.
const (
	failRate  = 1  // failed lookups refilled per second and address
	failBurst = 30 // failed lookups an address may make at once
	// maxFailAddrs bounds the map; past it, addresses idle for a minute
	// are dropped, then any one (a fresh bucket is full anyway).
	maxFailAddrs = 4096
)

// addrFails are failed-lookup buckets by client address. Safe for
// concurrent use.
type addrFails struct {
	now func() time.Time

	mu sync.Mutex
	m  map[string]*limiterEntry
}

func newAddrFails() *addrFails {
	return &addrFails{now: time.Now, m: map[string]*limiterEntry{}}
}

// clientAddr is the address a request came from, without its port; an
// IPv6 address is its /64, which one client usually holds whole.
func clientAddr(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		h = r.RemoteAddr
	}
	if ip, err := netip.ParseAddr(h); err == nil && ip.Is6() && !ip.Is4In6() {
		if pfx, err := ip.Prefix(64); err == nil {
			return pfx.String()
		}
	}
	return h
}

// blocked says addr has no failed lookup left, and how long until it has.
func (f *addrFails) blocked(addr string) (time.Duration, bool) {
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
	return time.Duration((1 - tokens) / failRate * float64(time.Second)), true
}

// take charges a lookup to addr before it is made, so concurrent lookups
// cannot overdraw the bucket; refund gives it back once the lookup found a
// good key. ok is false, with the wait, when the bucket is empty.
func (f *addrFails) take(addr string) (refund func(), wait time.Duration, ok bool) {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	res := limiterOf(f.m, addr, now, maxFailAddrs, true, func() *rate.Limiter {
		return rate.NewLimiter(failRate, failBurst)
	}).l.ReserveN(now, 1)
	if wait = res.DelayFrom(now); wait > 0 {
		res.CancelAt(now)
		return nil, wait, false
	}
	return func() { res.CancelAt(f.now()) }, 0, true
}

// fail charges one failed lookup to addr.
func (f *addrFails) fail(addr string) {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	limiterOf(f.m, addr, now, maxFailAddrs, true, func() *rate.Limiter {
		return rate.NewLimiter(failRate, failBurst)
	}).l.AllowN(now, 1)
}

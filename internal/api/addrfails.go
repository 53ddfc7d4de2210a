package api

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Lookups of credentials the process cannot answer without the store
// (preview tokens; API keys the auth cache does not know) are charged to
// a bucket of the client's address before they are made, one set of
// buckets per kind, and refunded when the credential proves good: a client
// whose bucket is empty gets 429 before its next such credential is looked
// up, however many arrive at once, so random aep_ tokens or ae_ keys cannot
// turn aetherd into a store-load amplifier. A key the auth cache knows is
// never refused this way (authKey), so a client sharing an address with an
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

// addrFails are lookup buckets by client address. Safe for
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

// take charges a lookup to addr before it is made, so concurrent lookups
// cannot overdraw the bucket; refund gives it back once the lookup found a
// good credential. ok is false, with the wait, when the bucket is empty.
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

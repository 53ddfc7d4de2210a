package api

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/auth"
	"github.com/aetherium/aetherium/internal/store"
)

// concretePath turns a route pattern into a method and a path to request.
func concretePath(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	r := strings.NewReplacer("{id}", "x", "{name}", "x")
	return method, r.Replace(path)
}

// TestEveryRouteNeedsAKey walks the real route table: every route but the
// open ones (/health, the dashboard's page and login) answers 401, with one
// message, to a request without a key, with a malformed, unknown, revoked or
// expired key, as a bearer token or a dashboard session cookie, so a route
// added later is covered without touching this test.
func TestEveryRouteNeedsAKey(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	revoked := a.key(t, store.DefaultProjectID, store.RoleAdmin, nil)
	prefix, _ := auth.PrefixOf(revoked)
	if _, err := a.st.APIKeyRevoke(t.Context(), "", prefix); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Minute)
	expired := a.key(t, store.DefaultProjectID, store.RoleAdmin, &past)
	unknown, _, _ := auth.NewKey()
	keys := []struct{ name, header, cookie string }{
		{"no key", "", ""},
		{"not bearer", "Basic " + a.admin, ""},
		{"malformed", "Bearer nonsense", ""},
		{"unknown", "Bearer " + unknown, ""},
		{"revoked", "Bearer " + revoked, ""},
		{"expired", "Bearer " + expired, ""},
		{"internal token on a key route", "Bearer secret", ""},
		{"session of an unknown key", "", unknown},
		{"session of a revoked key", "", revoked},
		{"session of an expired key", "", expired},
	}
	routes := a.s.routes()
	if len(routes) < 30 {
		t.Fatalf("only %d routes in the table", len(routes))
	}
	for _, rt := range routes {
		method, path := concretePath(rt.pattern)
		for _, k := range keys {
			if rt.access == open || (rt.access == internal && k.header == "Bearer secret") {
				continue
			}
			t.Run(rt.pattern+"/"+k.name, func(t *testing.T) {
				t.Parallel()
				req := httptest.NewRequestWithContext(t.Context(), method, path, strings.NewReader(`{}`))
				req.Host = "127.0.0.1:8080"
				req.Header.Set("Content-Type", "application/json")
				if k.header != "" {
					req.Header.Set("Authorization", k.header)
				}
				if k.cookie != "" {
					req.AddCookie(&http.Cookie{Name: SessionCookie, Value: k.cookie})
				}
				rec := httptest.NewRecorder()
				a.s.ServeHTTP(rec, req)
				var e struct {
					Error struct{ Code, Message string } `json:"error"`
				}
				json.Unmarshal(rec.Body.Bytes(), &e)
				if rec.Code != http.StatusUnauthorized || e.Error.Code != "unauthenticated" || e.Error.Message != auth.ErrUnauthenticated.Error() {
					t.Errorf("%s %s with %s = %d %s; want 401 unauthenticated", method, path, k.name, rec.Code, rec.Body)
				}
			})
		}
	}
	t.Run("health is open", func(t *testing.T) {
		if status, body := a.doAs(t, "", "GET", "/health", ""); status != http.StatusOK {
			t.Errorf("GET /health without a key = %d %s; want 200", status, body)
		}
	})
}

// TestRoles checks that member keys reach their own project's routes but
// no admin route, and that /metrics takes an admin key or the metrics token.
func TestRoles(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	mem := a.key(t, store.DefaultProjectID, store.RoleMember, nil)
	tests := []struct {
		name, key, method, path, body string
		want                          int
	}{
		{"member lists sandboxes", mem, "GET", "/api/v1/vms", "", 200},
		{"member cannot list projects", mem, "GET", "/api/v1/projects", "", 403},
		{"member cannot create keys", mem, "POST", "/api/v1/keys", `{"role":"admin"}`, 403},
		{"member cannot build images", mem, "POST", "/api/v1/images", `{}`, 403},
		{"member cannot read the audit log", mem, "GET", "/api/v1/audit", "", 403},
		{"member cannot scrape", mem, "GET", "/metrics", "", 403},
		{"admin scrapes", a.admin, "GET", "/metrics", "", 200},
		{"admin lists projects", a.admin, "GET", "/api/v1/projects", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if status, body := a.doAs(t, tt.key, tt.method, tt.path, tt.body); status != tt.want {
				t.Errorf("%s %s = %d %s; want %d", tt.method, tt.path, status, body, tt.want)
			}
		})
	}
}

// TestUnknownKeysPerAddress: lookups of keys the auth cache does not know
// are charged to the client's address (an IPv6 /64) before they are made;
// past the burst, the next such key from there is 429 without a lookup —
// however many arrive at once — while keys the cache knows (fresh, or a
// stale row of the same key) are served as before, a good key's lookup is
// refunded, other addresses are unaffected, and the bucket refills with
// time (a frozen clock, moved by hand).
func TestUnknownKeysPerAddress(t *testing.T) {
	t.Parallel()
	a := newTestAPIWith(t, func(_ *testAPI, cfg *Config) { cfg.AuthCacheTTL = 100 * time.Millisecond })
	now := time.Now()
	a.s.keyFails.now = func() time.Time { return now }
	get := func(addr, key string) int {
		req := httptest.NewRequestWithContext(t.Context(), "GET", "/api/v1/vms", nil)
		req.Host, req.RemoteAddr = "127.0.0.1:8080", net.JoinHostPort(addr, "40000")
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		a.s.ServeHTTP(rec, req)
		return rec.Code
	}
	member := a.key(t, store.DefaultProjectID, store.RoleMember, nil)
	for range failBurst + 5 { // good keys' lookups are refunded
		if code := get("192.0.2.1", member); code != http.StatusOK {
			t.Fatalf("member key: %d", code)
		}
		time.Sleep(5 * time.Millisecond)
	}
	uncached := a.key(t, store.DefaultProjectID, store.RoleMember, nil)
	codes := make(chan int, 3*failBurst)
	var wg sync.WaitGroup
	for range 3 * failBurst { // at once: none may overdraw the bucket
		wg.Go(func() {
			unknown, _, _ := auth.NewKey()
			codes <- get("192.0.2.1", unknown)
		})
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[http.StatusUnauthorized] > failBurst || count[http.StatusUnauthorized]+count[http.StatusTooManyRequests] != 3*failBurst {
		t.Fatalf("%d unknown keys at once: %v; want at most %d looked up (401), the rest 429", 3*failBurst, count, failBurst)
	}
	time.Sleep(150 * time.Millisecond) // the member key's row is stale now
	unknown, _, _ := auth.NewKey()
	for _, tt := range []struct {
		name, addr, key string
		want            int
	}{
		{"a new unknown key past the burst", "192.0.2.1", unknown, http.StatusTooManyRequests},
		{"a valid key the cache never held, from there", "192.0.2.1", uncached, http.StatusTooManyRequests},
		{"a known key whose row went stale, from there", "192.0.2.1", member, http.StatusOK},
		{"the same /64", "2001:db8:1:2::1", unknown, http.StatusUnauthorized},
		{"a new unknown key from another address", "192.0.2.2", unknown, http.StatusUnauthorized},
	} {
		if code := get(tt.addr, tt.key); code != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, code, tt.want)
		}
	}
	for range failBurst {
		k, _, _ := auth.NewKey()
		get("2001:db8:1:2::1", k)
	}
	fresh, _, _ := auth.NewKey()
	if code := get("2001:db8:1:2:ffff::9", fresh); code != http.StatusTooManyRequests {
		t.Errorf("another address of an emptied /64: %d, want 429", code)
	}
	now = now.Add(time.Second)
	if code := get("192.0.2.1", uncached); code != http.StatusOK {
		t.Errorf("valid key a second later: %d, want 200", code)
	}
}

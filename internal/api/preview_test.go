package api

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/internal/store"
)

func TestParsePreviewLabel(t *testing.T) {
	t.Parallel()
	const id = "3f2a9c1e-0b1d-4e5f-9a7b-1c2d3e4f5a6b"
	tests := []struct {
		label string
		port  int
		vm    string
	}{
		{"80-" + id, 80, id},
		{"65535-" + id, 65535, id},
		{"8000-web", 0, ""}, // a name is unique only within a project
		{"3000-my-dev-app", 0, ""},
		{"80-3F2A9C1E-0B1D-4E5F-9A7B-1C2D3E4F5A6B", 0, ""}, // previewLabel lowers the Host first
		{"80-3f2a9c1e0b1d4e5f9a7b1c2d3e4f5a6b", 0, ""},     // one sandbox, one origin
		{"80-{" + id + "}", 0, ""},
		{"80-urn:uuid:" + id, 0, ""},
		{id, 0, ""},
		{"-" + id, 0, ""},
		{"8000-", 0, ""},
		{"08000-" + id, 0, ""},
		{"0-" + id, 0, ""},
		{"65536-" + id, 0, ""},
		{"+80-" + id, 0, ""},
		{"80x-" + id, 0, ""},
		{"", 0, ""},
	}
	for _, tt := range tests {
		port, vm, err := parsePreviewLabel(tt.label)
		if port != tt.port || vm != tt.vm || (err == nil) != (tt.port != 0) {
			t.Errorf("parsePreviewLabel(%q) = %d, %q, %v; want %d, %q", tt.label, port, vm, err, tt.port, tt.vm)
		}
	}
}

// previewEcho is what the fake sandbox's service saw of a request.
type previewEcho struct {
	Path, Query, Cookie, Authorization, Token string
}

// newPreviewAPI is a test API with preview hosts under preview.test whose
// sandboxes' ports are one echo server; dialed counts the dials and
// remembers the last port.
func newPreviewAPI(t *testing.T, limits RateLimits) (a *testAPI, lastPort *atomic.Int64) {
	t.Helper()
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "app", Value: "1", Domain: "preview.test"})
		http.SetCookie(w, &http.Cookie{Name: previewCookie, Value: "forged"})
		json.NewEncoder(w).Encode(previewEcho{Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Cookie: r.Header.Get("Cookie"),
			Authorization: r.Header.Get("Authorization"), Token: r.Header.Get(PreviewTokenHeader)})
	}))
	t.Cleanup(echo.Close)
	lastPort = &atomic.Int64{}
	a = newTestAPIWith(t, func(a *testAPI, cfg *Config) {
		cfg.PreviewDomain = "Preview.Test."
		cfg.RateLimits = limits
		a.sb.DialImpl = func(ctx context.Context, _ *store.VM, port int) (net.Conn, error) {
			lastPort.Store(int64(port))
			return (&net.Dialer{}).DialContext(ctx, "tcp", echo.Listener.Addr().String())
		}
	})
	return a, lastPort
}

// createPreview makes a preview token of port of sandbox vm with key.
func (a *testAPI) createPreview(t *testing.T, key, vm string, port int) apiv1.Preview {
	t.Helper()
	code, body := a.doAs(t, key, http.MethodPost, "/api/v1/vms/"+vm+"/previews", `{"port":`+itoa(port)+`}`)
	if code != http.StatusCreated {
		t.Fatalf("create preview: %d %s", code, body)
	}
	var p apiv1.Preview
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// previewVM inserts a running sandbox with a UUID, as aetherd makes them.
func (a *testAPI) previewVM(t *testing.T, name string) *store.VM {
	t.Helper()
	return a.vmWithID(t, uuid.NewString(), name, store.VMRunning)
}

// previewReq serves one request to a preview host.
func (a *testAPI) previewReq(t *testing.T, host, target string, edit func(r *http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, target, nil)
	req.Host = host
	if edit != nil {
		edit(req)
	}
	rec := httptest.NewRecorder()
	a.s.ServeHTTP(rec, req)
	return rec
}

// TestPreviewHost: a preview host proxies one sandbox port, path as it is,
// to a token of exactly that sandbox and port or a key of its project, and
// to nothing else; neither the token nor the key reaches the sandbox.
func TestPreviewHost(t *testing.T) {
	t.Parallel()
	a, lastPort := newPreviewAPI(t, RateLimits{})
	web := a.previewVM(t, "web")
	other := a.previewVM(t, "other")
	_, otherKey := a.project(t, "b", store.Quota{})
	p := a.createPreview(t, a.admin, "web", 8000)
	if p.URL != "http://8000-"+web.ID+".preview.test:8080/" || p.TokenURL != p.URL+"?aether_preview_token="+p.Token ||
		!strings.HasPrefix(p.Token, "aep_") || len(p.Token) < 40 {
		t.Fatalf("created preview = %+v", p)
	}
	expired, err := a.st.PreviewTokenInsert(t.Context(), &store.PreviewTokenInsertParams{ID: uuid.NewString(),
		ProjectID: store.DefaultProjectID, VMID: web.ID, Port: 8000, Hash: previewHash("aep_expired"), ExpiresAt: time.Now().Add(-time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	revoked := a.createPreview(t, a.admin, "web", 8000)
	if code, body := a.do(t, http.MethodDelete, "/api/v1/vms/web/previews/"+revoked.ID, ""); code != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", code, body)
	}
	token := func(v string) func(r *http.Request) {
		return func(r *http.Request) { r.Header.Set(PreviewTokenHeader, v) }
	}
	bearer := func(v string) func(r *http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+v) }
	}
	host := "8000-" + web.ID + ".preview.test:8080"
	tests := []struct {
		name, host, target string
		edit               func(r *http.Request)
		want               int
		echo               previewEcho // checked when want is 200
	}{
		{"no credentials", host, "/", nil, http.StatusUnauthorized, previewEcho{}},
		{"token header", host, "/a/b%2Fc?x=1", token(p.Token), http.StatusOK, previewEcho{Path: "/a/b%2Fc", Query: "x=1"}},
		{"token cookie; the app's cookie passes", host, "/", func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: previewCookie, Value: p.Token})
			r.AddCookie(&http.Cookie{Name: SessionCookie, Value: a.admin})
			r.AddCookie(&http.Cookie{Name: "app", Value: "1"})
		}, http.StatusOK, previewEcho{Path: "/", Cookie: "app=1"}},
		{"token's Authorization is the app's", host, "/", func(r *http.Request) {
			token(p.Token)(r)
			r.Header.Set("Authorization", "Basic YXBwOmFwcA==")
		}, http.StatusOK, previewEcho{Path: "/", Authorization: "Basic YXBwOmFwcA=="}},
		{"host in upper case", "8000-" + strings.ToUpper(web.ID) + ".Preview.Test", "/", token(p.Token), http.StatusOK, previewEcho{Path: "/"}},
		{"sandbox by name is no preview host", "8000-web.preview.test", "/", token(p.Token), http.StatusNotFound, previewEcho{}},
		{"by name with a key neither", "8000-web.preview.test", "/", bearer(a.admin), http.StatusNotFound, previewEcho{}},
		{"token of another port", "3000-" + web.ID + ".preview.test", "/", token(p.Token), http.StatusNotFound, previewEcho{}},
		{"token of another sandbox", "8000-" + other.ID + ".preview.test", "/", token(p.Token), http.StatusNotFound, previewEcho{}},
		{"expired token", host, "/", token("aep_expired"), http.StatusUnauthorized, previewEcho{}},
		{"revoked token", host, "/", token(revoked.Token), http.StatusUnauthorized, previewEcho{}},
		{"unknown token", host, "/", token("aep_" + strings.Repeat("A", 43)), http.StatusUnauthorized, previewEcho{}},
		{"an API key is no token", host, "/", token(a.admin), http.StatusUnauthorized, previewEcho{}},
		{"key of the project, stripped", host, "/api/v1/vms", bearer(a.admin), http.StatusOK, previewEcho{Path: "/api/v1/vms"}},
		{"key of another project", host, "/", bearer(otherKey), http.StatusNotFound, previewEcho{}},
		{"session cookie is no credential here", host, "/", func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: SessionCookie, Value: a.admin})
		}, http.StatusUnauthorized, previewEcho{}},
		{"not a preview label", "web.preview.test", "/", token(p.Token), http.StatusNotFound, previewEcho{}},
		{"two labels", "8000-" + web.ID + ".x.preview.test", "/", token(p.Token), http.StatusNotFound, previewEcho{}},
		{"the preview domain itself", "preview.test", "/api/v1/vms", bearer(a.admin), http.StatusNotFound, previewEcho{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := a.previewReq(t, tt.host, tt.target, tt.edit)
			if rec.Code != tt.want {
				t.Fatalf("%s %s: %d %s; want %d", tt.host, tt.target, rec.Code, rec.Body, tt.want)
			}
			if tt.want != http.StatusOK {
				return
			}
			var got previewEcho
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got != tt.echo {
				t.Fatalf("the sandbox saw %+v (%v); want %+v", got, err, tt.echo)
			}
			if lastPort.Load() != 8000 {
				t.Fatalf("dialed port %d, want 8000", lastPort.Load())
			}
			if c := rec.Header().Values("Set-Cookie"); len(c) != 1 || c[0] != "app=1" {
				t.Fatalf("Set-Cookie = %q; want the app's cookie without Domain, and no forged preview cookie", c)
			}
		})
	}
	if _, err := a.st.PreviewTokenByHash(t.Context(), expired.Hash); err != nil {
		t.Fatal(err)
	}
}

// TestPreviewTokenInQuery: a browser's first visit with the token in the
// query gets a host-only, HttpOnly, SameSite=Lax cookie and a redirect to
// the same URL without the token; a bad token in the query is 401.
func TestPreviewTokenInQuery(t *testing.T) {
	t.Parallel()
	a, _ := newPreviewAPI(t, RateLimits{})
	web := a.previewVM(t, "web")
	p := a.createPreview(t, a.admin, "web", 8000)
	host := "8000-" + web.ID + ".preview.test"
	rec := a.previewReq(t, host+":8080", "/app/?x=1&aether_preview_token="+p.Token, nil)
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "http://"+host+":8080/app/?x=1" {
		t.Fatalf("first visit: %d, Location %q", rec.Code, rec.Header().Get("Location"))
	}
	c, err := http.ParseSetCookie(rec.Header().Get("Set-Cookie"))
	if err != nil || c.Name != previewCookie || c.Value != p.Token || c.Domain != "" || c.Path != "/" || !c.HttpOnly ||
		c.SameSite != http.SameSiteLaxMode || c.Secure {
		t.Fatalf("cookie %+v, %v", c, err)
	}
	// A path that a browser would read as another host stays on this one.
	rec = a.previewReq(t, host, "//evil.test/?aether_preview_token="+p.Token, nil)
	if loc := rec.Header().Get("Location"); !strings.HasPrefix(loc, "http://"+host+"/") {
		t.Fatalf("Location %q leaves the preview host", loc)
	}
	rec = a.previewReq(t, host, "/?aether_preview_token=aep_wrong", nil)
	if rec.Code != http.StatusUnauthorized || rec.Header().Get("Set-Cookie") != "" {
		t.Fatalf("bad token in the query: %d, Set-Cookie %q", rec.Code, rec.Header().Get("Set-Cookie"))
	}
}

// TestPreviewTokenRateLimit: each token has its own bucket.
func TestPreviewTokenRateLimit(t *testing.T) {
	t.Parallel()
	a, _ := newPreviewAPI(t, RateLimits{Preview: Rate{PerSecond: 0.001, Burst: 2}})
	web := a.previewVM(t, "web")
	p1, p2 := a.createPreview(t, a.admin, "web", 8000), a.createPreview(t, a.admin, "web", 8000)
	get := func(tok string) int {
		return a.previewReq(t, "8000-"+web.ID+".preview.test", "/", func(r *http.Request) { r.Header.Set(PreviewTokenHeader, tok) }).Code
	}
	for i, want := range []int{200, 200, 429} {
		if got := get(p1.Token); got != want {
			t.Fatalf("request %d with token 1: %d, want %d", i+1, got, want)
		}
	}
	if got := get(p2.Token); got != http.StatusOK {
		t.Fatalf("token 2 after token 1 ran out: %d, want 200", got)
	}
}

// TestPreviewRoutes: creating, listing and revoking tokens checks its input,
// never lists a secret, needs the preview domain, and is project-scoped.
func TestPreviewRoutes(t *testing.T) {
	t.Parallel()
	a, _ := newPreviewAPI(t, RateLimits{})
	a.vm(t, "web", store.VMRunning)
	_, otherKey := a.project(t, "b", store.Quota{})
	p := a.createPreview(t, a.admin, "web", 8000)
	tests := []struct {
		name, key, method, path, body string
		want                          int
	}{
		{"port 0", a.admin, http.MethodPost, "/api/v1/vms/web/previews", `{"port":0}`, http.StatusBadRequest},
		{"port too big", a.admin, http.MethodPost, "/api/v1/vms/web/previews", `{"port":65536}`, http.StatusBadRequest},
		{"ttl too long", a.admin, http.MethodPost, "/api/v1/vms/web/previews", `{"port":80,"ttl_seconds":604801}`, http.StatusBadRequest},
		{"negative ttl", a.admin, http.MethodPost, "/api/v1/vms/web/previews", `{"port":80,"ttl_seconds":-1}`, http.StatusBadRequest},
		{"longest ttl", a.admin, http.MethodPost, "/api/v1/vms/web/previews", `{"port":80,"ttl_seconds":604800}`, http.StatusCreated},
		{"no such sandbox", a.admin, http.MethodPost, "/api/v1/vms/nope/previews", `{"port":80}`, http.StatusNotFound},
		{"another project creates", otherKey, http.MethodPost, "/api/v1/vms/web/previews", `{"port":80}`, http.StatusNotFound},
		{"another project lists", otherKey, http.MethodGet, "/api/v1/vms/web/previews", "", http.StatusNotFound},
		{"another project revokes", otherKey, http.MethodDelete, "/api/v1/vms/web/previews/" + p.ID, "", http.StatusNotFound},
		{"unknown token", a.admin, http.MethodDelete, "/api/v1/vms/web/previews/nope", "", http.StatusNotFound},
	}
	for _, tt := range tests {
		if code, body := a.doAs(t, tt.key, tt.method, tt.path, tt.body); code != tt.want {
			t.Errorf("%s: %d %s; want %d", tt.name, code, body, tt.want)
		}
	}
	code, body := a.do(t, http.MethodGet, "/api/v1/vms/web/previews", "")
	var list apiv1.PreviewList
	if err := json.Unmarshal([]byte(body), &list); code != http.StatusOK || err != nil || len(list.Previews) != 2 {
		t.Fatalf("list: %d %s", code, body)
	}
	for _, l := range list.Previews {
		if l.Token != "" || l.TokenURL != "" || strings.Contains(body, p.Token) || l.URL == "" {
			t.Fatalf("list shows %+v", l)
		}
	}
	off := newTestAPI(t)
	off.vm(t, "web", store.VMRunning)
	if code, body := off.do(t, http.MethodPost, "/api/v1/vms/web/previews", `{"port":80}`); code != http.StatusConflict {
		t.Fatalf("without a preview domain: %d %s; want 409", code, body)
	}
	// Without a preview domain, a Host that looks like a preview host is
	// just a Host the API does not serve.
	rec := off.request(t, http.MethodGet, "/api/v1/vms", "", func(r *http.Request) { r.Host = "8000-web.preview.test" })
	if rec.Code != http.StatusMisdirectedRequest {
		t.Fatalf("preview-looking Host without a preview domain: %d", rec.Code)
	}
}

// TestPreviewFailedTokens: unknown tokens are charged to the client's
// address; once its bucket is empty even a valid token from there is 429
// (refused before the store is asked) while other addresses are served;
// the bucket refills with time (a frozen clock, moved by hand) and the map
// of addresses stays bounded.
func TestPreviewFailedTokens(t *testing.T) {
	t.Parallel()
	a, _ := newPreviewAPI(t, RateLimits{})
	now := time.Now()
	a.s.previewFails.now = func() time.Time { return now }
	web := a.previewVM(t, "web")
	p := a.createPreview(t, a.admin, "web", 8000)
	get := func(addr, tok string) int {
		return a.previewReq(t, "8000-"+web.ID+".preview.test", "/", func(r *http.Request) {
			r.RemoteAddr = addr + ":40000"
			r.Header.Set(PreviewTokenHeader, tok)
		}).Code
	}
	for i := range 2 * failBurst { // a valid token's lookups are refunded
		if code := get("192.0.2.1", p.Token); code != http.StatusOK {
			t.Fatalf("valid token %d: %d, want 200", i+1, code)
		}
	}
	unknown := "aep_" + strings.Repeat("B", 43)
	for i := range failBurst {
		if code := get("192.0.2.1", unknown); code != http.StatusUnauthorized {
			t.Fatalf("unknown token %d: %d, want 401", i+1, code)
		}
	}
	if code := get("192.0.2.1", unknown); code != http.StatusTooManyRequests {
		t.Fatalf("unknown token past the burst: %d, want 429", code)
	}
	if code := get("192.0.2.1", p.Token); code != http.StatusTooManyRequests {
		t.Fatalf("valid token from the blocked address: %d, want 429", code)
	}
	if code := get("192.0.2.2", p.Token); code != http.StatusOK {
		t.Fatalf("valid token from another address: %d, want 200", code)
	}
	now = now.Add(time.Second)
	if code := get("192.0.2.1", p.Token); code != http.StatusOK {
		t.Fatalf("valid token a second later: %d, want 200", code)
	}
	f := newAddrFails()
	for i := range maxFailAddrs + 10 {
		f.take(itoa(i))
	}
	if len(f.m) > maxFailAddrs {
		t.Fatalf("%d addresses kept, want at most %d", len(f.m), maxFailAddrs)
	}
}

// TestPreviewStreamEndsWithToken: a long-lived response through a preview
// host (an event stream here; WebSockets share the request's context) is
// cut when its token expires or is revoked, even though the sandbox's
// service would stream on forever. The only bound on the wait is a failure
// bound, not the assertion.
func TestPreviewStreamEndsWithToken(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		life   time.Duration
		revoke bool
	}{{"expired", 2 * time.Second, false}, {"revoked", time.Hour, true}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			upstreamDone := make(chan struct{})
			stream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				w.Write([]byte("data: hello\n\n"))
				w.(http.Flusher).Flush()
				<-r.Context().Done() // streams until the proxy hangs up
				close(upstreamDone)
			}))
			t.Cleanup(stream.Close)
			a := newTestAPIWith(t, func(a *testAPI, cfg *Config) {
				cfg.PreviewDomain = "preview.test"
				cfg.AuthCacheTTL = 50 * time.Millisecond
				a.sb.DialImpl = func(ctx context.Context, _ *store.VM, _ int) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, "tcp", stream.Listener.Addr().String())
				}
			})
			web := a.previewVM(t, "web")
			id := uuid.NewString()
			if _, err := a.st.PreviewTokenInsert(t.Context(), &store.PreviewTokenInsertParams{ID: id, ProjectID: store.DefaultProjectID,
				VMID: web.ID, Port: 8000, Hash: previewHash("aep_short"), ExpiresAt: time.Now().Add(tt.life)}); err != nil {
				t.Fatal(err)
			}
			served := make(chan *httptest.ResponseRecorder, 1)
			go func() {
				served <- a.previewReq(t, "8000-"+web.ID+".preview.test", "/events", func(r *http.Request) { r.Header.Set(PreviewTokenHeader, "aep_short") })
			}()
			if tt.revoke {
				time.Sleep(300 * time.Millisecond) // six rechecks of a live token
				select {
				case rec := <-served:
					t.Fatalf("the stream ended before its token was revoked: %d %q", rec.Code, rec.Body)
				default:
				}
				if status, body := a.do(t, "DELETE", "/api/v1/vms/"+web.ID+"/previews/"+id, ""); status != http.StatusNoContent {
					t.Fatalf("revoke: %d %s", status, body)
				}
			}
			select {
			case rec := <-served:
				<-upstreamDone
				if !strings.HasPrefix(rec.Body.String(), "data: hello") {
					t.Fatalf("stream: %d %q", rec.Code, rec.Body)
				}
			case <-time.After(time.Minute): // failure bound only
				t.Fatal("the stream outlived its preview token")
			}
		})
	}
}

package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/internal/auth"
	"github.com/aetherium/aetherium/internal/store"
)

// sessionReq is one request of a browser holding the session cookie.
type sessionReq struct {
	method, path, body string
	cookie, csrf       string
	header             map[string]string
}

func (a *testAPI) doSession(t *testing.T, r sessionReq) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), r.method, r.path, strings.NewReader(r.body))
	req.Host = "127.0.0.1:8080"
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.cookie != "" {
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: r.cookie})
	}
	if r.csrf != "" {
		req.Header.Set(CSRFHeader, r.csrf)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	a.s.ServeHTTP(rec, req)
	return rec
}

// login logs in with key and returns the session cookie's value and the
// session.
func (a *testAPI) login(t *testing.T, key string) (string, apiv1.Session) {
	t.Helper()
	rec := a.doSession(t, sessionReq{method: "POST", path: "/api/v1/session", body: `{"key":"` + key + `"}`})
	if rec.Code != http.StatusOK {
		t.Fatalf("login = %d %s", rec.Code, rec.Body)
	}
	var s apiv1.Session
	if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 || cookies[0].Name != SessionCookie {
		t.Fatalf("login set cookies %v; want one %s", cookies, SessionCookie)
	}
	c := cookies[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.MaxAge != 0 || !c.Expires.IsZero() || c.Secure {
		t.Errorf("session cookie %q: want HttpOnly, SameSite=Strict, Path=/, no expiry (a browser-session cookie), not Secure over plain HTTP",
			rec.Header().Get("Set-Cookie"))
	}
	return c.Value, s
}

// TestSessionLogin: a valid key logs in and the cookie then acts as it
// within its project; a bad key, a cross-site login and a non-JSON body are
// refused.
func TestSessionLogin(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	pID, member := a.project(t, "p", store.Quota{})
	other := a.vm(t, "other-project", store.VMRunning) // in the default project

	cookie, s := a.login(t, member)
	if s.ProjectID != pID || s.Role != store.RoleMember || s.CSRFToken == "" || s.CSRFToken == member {
		t.Errorf("session = %+v; want project %s, member, a CSRF token that is not the key", s, pID)
	}
	if strings.Contains(s.CSRFToken, member) || strings.Contains(a.doSession(t, sessionReq{method: "GET", path: "/api/v1/session", cookie: cookie}).Body.String(), member) {
		t.Error("the key is readable by the page")
	}
	tests := []struct {
		name string
		req  sessionReq
		want int
	}{
		{"cookie reads the session", sessionReq{method: "GET", path: "/api/v1/session", cookie: cookie}, 200},
		{"cookie lists its sandboxes", sessionReq{method: "GET", path: "/api/v1/vms", cookie: cookie}, 200},
		{"cookie cannot see another project's sandbox", sessionReq{method: "GET", path: "/api/v1/vms/" + other.ID, cookie: cookie}, 404},
		{"cookie of a member key is no admin", sessionReq{method: "GET", path: "/api/v1/workers", cookie: cookie}, 403},
		{"unknown key", sessionReq{method: "POST", path: "/api/v1/session", body: `{"key":"ae_aaaaaaaa_` + strings.Repeat("a", 43) + `"}`}, 401},
		{"malformed key", sessionReq{method: "POST", path: "/api/v1/session", body: `{"key":"nonsense"}`}, 401},
		{"no key", sessionReq{method: "POST", path: "/api/v1/session", body: `{}`}, 400},
		{"login is JSON", sessionReq{method: "POST", path: "/api/v1/session", body: `{"key":"` + member + `"}`,
			header: map[string]string{"Content-Type": "text/plain"}}, 415},
		{"cross-site login", sessionReq{method: "POST", path: "/api/v1/session", body: `{"key":"` + member + `"}`,
			header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, 403},
		{"bogus cookie", sessionReq{method: "GET", path: "/api/v1/vms", cookie: "nonsense"}, 401},
		{"one session cookie", sessionReq{method: "GET", path: "/api/v1/vms", header: map[string]string{
			"Cookie": SessionCookie + "=" + member}}, 200},
		// Another host under the same domain tossed in a cookie of its own
		// key (Domain=parent, longer Path, so the browser sends it first).
		{"two session cookies", sessionReq{method: "GET", path: "/api/v1/vms", header: map[string]string{
			"Cookie": SessionCookie + "=" + member + "; " + SessionCookie + "=" + member}}, 401},
	}
	t.Run("the cookie is Secure over TLS", func(t *testing.T) {
		req := httptest.NewRequestWithContext(t.Context(), "POST", "https://127.0.0.1:8080/api/v1/session", strings.NewReader(`{"key":"`+member+`"}`))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		a.s.ServeHTTP(rec, req)
		if c := rec.Result().Cookies(); rec.Code != http.StatusOK || len(c) != 1 || !c[0].Secure {
			t.Errorf("login over TLS = %d, Set-Cookie %q; want Secure", rec.Code, rec.Header().Get("Set-Cookie"))
		}
		if c, _ := a.login(t, member); c == "" { // plain HTTP: not Secure (login checks the attributes)
			t.Error("no session over plain HTTP")
		}
	})
	t.Run("secure_cookies makes it Secure over plain HTTP too (behind an https proxy)", func(t *testing.T) {
		b := newTestAPIWith(t, func(_ *testAPI, cfg *Config) { cfg.SecureCookies = true })
		_, k := b.project(t, "p", store.Quota{})
		req := httptest.NewRequestWithContext(t.Context(), "POST", "http://127.0.0.1:8080/api/v1/session", strings.NewReader(`{"key":"`+k+`"}`))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		b.s.ServeHTTP(rec, req)
		c := rec.Result().Cookies()
		if rec.Code != http.StatusOK || len(c) != 1 || !c[0].Secure || c[0].Name != SecureSessionCookie || c[0].Path != "/" || c[0].Domain != "" {
			t.Fatalf("login = %d, Set-Cookie %q; want Secure %s, Path=/, no Domain", rec.Code, rec.Header().Get("Set-Cookie"), SecureSessionCookie)
		}
		// Only the API's host can set a __Host- cookie; a cookie without
		// the prefix may come from any host under the domain.
		for _, tt := range []struct {
			name, cookie string
			want         int
		}{
			{"the __Host- cookie", SecureSessionCookie + "=" + k, http.StatusOK},
			{"a tossed cookie without the prefix", SessionCookie + "=" + k, http.StatusUnauthorized},
			{"two __Host- cookies", SecureSessionCookie + "=" + k + "; " + SecureSessionCookie + "=" + k, http.StatusUnauthorized},
		} {
			req := httptest.NewRequestWithContext(t.Context(), "GET", "http://127.0.0.1:8080/api/v1/vms", nil)
			req.Header.Set("Cookie", tt.cookie)
			rec := httptest.NewRecorder()
			b.s.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Errorf("%s: %d %s; want %d", tt.name, rec.Code, rec.Body, tt.want)
			}
		}
		req = httptest.NewRequestWithContext(t.Context(), "DELETE", "http://127.0.0.1:8080/api/v1/session", nil)
		req.Header.Set("Cookie", SecureSessionCookie+"="+k)
		req.Header.Set(CSRFHeader, csrfToken(k))
		rec = httptest.NewRecorder()
		b.s.ServeHTTP(rec, req)
		if c := rec.Result().Cookies(); rec.Code != http.StatusNoContent || len(c) != 1 || c[0].Name != SecureSessionCookie || c[0].MaxAge >= 0 {
			t.Errorf("logout = %d, Set-Cookie %q; want %s cleared", rec.Code, rec.Header().Get("Set-Cookie"), SecureSessionCookie)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if rec := a.doSession(t, tt.req); rec.Code != tt.want {
				t.Errorf("%s %s = %d %s; want %d", tt.req.method, tt.req.path, rec.Code, rec.Body, tt.want)
			}
		})
	}
}

// TestSessionCSRF: with the cookie, requests that change something (and
// WebSocket upgrades) need the session's CSRF token; a bearer key does not.
func TestSessionCSRF(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	cookie, s := a.login(t, a.admin)
	_, other := a.login(t, a.key(t, store.DefaultProjectID, store.RoleAdmin, nil))
	upgrade := map[string]string{"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
	tests := []struct {
		name string
		req  sessionReq
		want int
	}{
		{"create without token", sessionReq{method: "POST", path: "/api/v1/vms", body: `{"name":"a"}`, cookie: cookie}, 403},
		{"create with another session's token", sessionReq{method: "POST", path: "/api/v1/vms", body: `{"name":"a"}`, cookie: cookie, csrf: other.CSRFToken}, 403},
		{"create with the key as token", sessionReq{method: "POST", path: "/api/v1/vms", body: `{"name":"a"}`, cookie: cookie, csrf: a.admin}, 403},
		{"create with token", sessionReq{method: "POST", path: "/api/v1/vms", body: `{"name":"b"}`, cookie: cookie, csrf: s.CSRFToken}, 202},
		{"delete without token", sessionReq{method: "DELETE", path: "/api/v1/vms/b", cookie: cookie}, 403},
		{"logout without token", sessionReq{method: "DELETE", path: "/api/v1/session", cookie: cookie}, 403},
		{"websocket without token", sessionReq{method: "GET", path: "/api/v1/logs/stream", cookie: cookie, header: upgrade}, 403},
		{"websocket with token in the query", sessionReq{method: "GET", path: "/api/v1/logs/stream?csrf_token=" + s.CSRFToken, cookie: cookie, header: upgrade}, 101},
		{"bearer needs no token", sessionReq{method: "POST", path: "/api/v1/vms", body: `{"name":"c"}`,
			header: map[string]string{"Authorization": "Bearer " + a.admin}}, 202},
		{"cross-site with token", sessionReq{method: "POST", path: "/api/v1/vms", body: `{"name":"d"}`, cookie: cookie, csrf: s.CSRFToken,
			header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := a.doSession(t, tt.req)
			if tt.want == 101 { // httptest cannot hijack: the upgrade got past the guard if it reached Accept
				if rec.Code == http.StatusForbidden || rec.Code == http.StatusUnauthorized {
					t.Errorf("upgrade = %d %s; want it past the guard", rec.Code, rec.Body)
				}
				return
			}
			if rec.Code != tt.want {
				t.Errorf("%s %s = %d %s; want %d", tt.req.method, tt.req.path, rec.Code, rec.Body, tt.want)
			}
		})
	}
	t.Run("logout clears the cookie", func(t *testing.T) {
		rec := a.doSession(t, sessionReq{method: "DELETE", path: "/api/v1/session", cookie: cookie, csrf: s.CSRFToken})
		c := rec.Result().Cookies()
		if rec.Code != http.StatusNoContent || len(c) != 1 || c[0].Name != SessionCookie || c[0].MaxAge >= 0 || c[0].Value != "" {
			t.Errorf("logout = %d, cookies %q; want 204 and the cookie deleted", rec.Code, rec.Header().Values("Set-Cookie"))
		}
	})
}

// TestSessionEndsWithItsKey: a session is its key, so revoking the key
// logs the browser out at its next request.
func TestSessionEndsWithItsKey(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	key := a.key(t, store.DefaultProjectID, store.RoleMember, nil)
	cookie, _ := a.login(t, key)
	if rec := a.doSession(t, sessionReq{method: "GET", path: "/api/v1/vms", cookie: cookie}); rec.Code != http.StatusOK {
		t.Fatalf("before revoking: %d %s", rec.Code, rec.Body)
	}
	prefix, _ := auth.PrefixOf(key)
	if status, body := a.doAs(t, a.admin, "DELETE", "/api/v1/keys/"+prefix, ""); status != http.StatusOK && status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", status, body)
	}
	for _, path := range []string{"/api/v1/vms", "/api/v1/session"} {
		if rec := a.doSession(t, sessionReq{method: "GET", path: path, cookie: cookie}); rec.Code != http.StatusUnauthorized {
			t.Errorf("after revoking the key, GET %s with its session = %d %s; want 401", path, rec.Code, rec.Body)
		}
	}
}

// TestDashboardPages: the page and its files are served without a key,
// with types a browser accepts for module scripts and a strict CSP.
func TestDashboardPages(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	tests := []struct {
		path, wantType, wantBody string
	}{
		{"/", "text/html", `src="/ui/app.js"`},
		{"/ui/app.js", "text/javascript", "EventSource"},
		{"/ui/style.css", "text/css", "body"},
		{"/ui/vendor/xterm.mjs", "text/javascript", "Terminal"},
		{"/ui/vendor/addon-fit.mjs", "text/javascript", "FitAddon"},
		{"/ui/vendor/xterm.css", "text/css", ".xterm"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rec := a.doSession(t, sessionReq{method: "GET", path: tt.path})
			if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), tt.wantType) ||
				!strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("GET %s = %d %s; want 200 %s containing %q", tt.path, rec.Code, rec.Header().Get("Content-Type"), tt.wantType, tt.wantBody)
			}
			if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("GET %s: CSP %q", tt.path, csp)
			}
		})
	}
	for _, path := range []string{"/ui/", "/ui/vendor/", "/ui/nope.js", "/ui/../routes.go", "/nope"} {
		if rec := a.doSession(t, sessionReq{method: "GET", path: path}); rec.Code == http.StatusOK {
			t.Errorf("GET %s = 200; want an error", path)
		}
	}
}

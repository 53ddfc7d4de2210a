package api

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// TestStripCredentials: what authenticated a request to aetherd (the key,
// the project header, the CSRF token, the dashboard's session cookie, which
// is the key) never reaches a sandbox's service; the app's own cookies and
// query do.
func TestStripCredentials(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodGet, "/api/v1/vms/x/ports/80/p?a=1&csrf_token=secret", nil)
	r.Header.Set("Authorization", "Bearer ae_key")
	r.Header.Set(ProjectHeader, "p")
	r.Header.Set("X-CSRF-Token", "secret")
	r.AddCookie(&http.Cookie{Name: SessionCookie, Value: "ae_key"})
	r.AddCookie(&http.Cookie{Name: SecureSessionCookie, Value: "ae_key"})
	r.AddCookie(&http.Cookie{Name: "app", Value: "1"})
	stripCredentials(r)
	for _, h := range []string{"Authorization", ProjectHeader, "X-CSRF-Token"} {
		if v := r.Header.Get(h); v != "" {
			t.Errorf("%s = %q after stripping", h, v)
		}
	}
	if got := r.Header.Get("Cookie"); got != "app=1" {
		t.Errorf("Cookie = %q, want app=1", got)
	}
	if got := r.URL.RawQuery; got != "a=1" {
		t.Errorf("query = %q, want a=1", got)
	}
}

func TestConfineResponse(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	h.Add("Set-Cookie", SessionCookie+"=stolen; Path=/")
	h.Add("Set-Cookie", SessionCookie+"=a b; Path=/") // browsers take it; Go's parser does not
	h.Add("Set-Cookie", "app=1; Path=/; Domain=example.com")
	h.Set("Clear-Site-Data", `"cookies"`)
	h.Set("Service-Worker-Allowed", "/")
	h.Set("Access-Control-Allow-Origin", "*")
	confineResponse(h, "/api/v1/vms/dev/ports/8000/")
	if got := h.Values("Set-Cookie"); !slices.Equal(got, []string{"app=1; Path=/api/v1/vms/dev/ports/8000/"}) {
		t.Errorf("Set-Cookie = %q, want only app=1 confined to the port's path", got)
	}
	for _, k := range []string{"Clear-Site-Data", "Service-Worker-Allowed", "Access-Control-Allow-Origin"} {
		if h.Get(k) != "" {
			t.Errorf("%s passed through", k)
		}
	}
	if !strings.HasPrefix(h.Get("Content-Security-Policy"), "sandbox") || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("CSP %q, nosniff %q", h.Get("Content-Security-Policy"), h.Get("X-Content-Type-Options"))
	}
}

func TestSubresourceOfThisOrigin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		site, dest string
		want       bool
	}{{"same-origin", "script", true}, {"same-origin", "worker", true}, {"same-origin", "document", false},
		{"cross-site", "script", false}, {"", "", false}} {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/vms/x/ports/80/a.js", nil)
		r.Header.Set("Sec-Fetch-Site", tc.site)
		r.Header.Set("Sec-Fetch-Dest", tc.dest)
		if got := subresourceOfThisOrigin(r); got != tc.want {
			t.Errorf("%s %s: %v, want %v", tc.site, tc.dest, got, tc.want)
		}
	}
}

func TestPortPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url, path, raw string
	}{
		{"/api/v1/vms/x/ports/80/", "/", ""},
		{"/api/v1/vms/x/ports/80/a/b", "/a/b", ""},
		{"/api/v1/vms/x/ports/80/a%2Fb/c", "/a/b/c", "/a%2Fb/c"},
		{"/internal/v1/vms/x/ports/80/z", "/z", ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, tt.url, nil)
		if path, raw := portPath(r); path != tt.path || raw != tt.raw {
			t.Errorf("portPath(%s) = %q, %q; want %q, %q", tt.url, path, raw, tt.path, tt.raw)
		}
	}
}

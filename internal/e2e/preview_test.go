package e2e_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
)

// TestPreviewHost reaches a service on a real sandbox's loopback through
// its preview host, {port}-{sandbox ID}.preview.test, sent to aetherd on
// loopback with that Host (no DNS needed): a token from `aether preview`
// lets a script in (header) and a browser in (query → cookie → redirect);
// the path arrives as it is and no credential reaches the service; an API
// path on the preview host is the service's, not the API's; a revoked
// token and no token are 401.
func TestPreviewHost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.proc = e.add("--runtime", "docker", "--preview-domain", "preview.test")
	e.connect(e.proc)
	e.start()
	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "web"})
	e.startHTTPD("web", "127.0.0.1", "8000")
	_, port, _ := net.SplitHostPort(e.addr)
	host := "8000-" + vm.ID + ".preview.test:" + port

	out, code := e.aether("", "preview", "web", "8000", "--ttl", "1h", "-o", "json")
	var p apiv1.Preview
	if err := json.Unmarshal([]byte(out), &p); code != 0 || err != nil {
		t.Fatalf("aether preview: %d %s", code, out)
	}
	if p.URL != "http://"+host+"/" || !strings.HasPrefix(p.TokenURL, p.URL+"?aether_preview_token=aep_") {
		t.Fatalf("aether preview printed %+v", p)
	}
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(target string, edit func(r *http.Request)) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+e.addr+target, nil)
		req.Host = host
		if edit != nil {
			edit(req)
		}
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	withToken := func(r *http.Request) { r.Header.Set("X-Aether-Preview-Token", p.Token) }

	if resp, body := get("/a%2Fb/c?x=1", withToken); resp.StatusCode != http.StatusOK ||
		body != "method=GET path=/a%2Fb/c?x=1 auth=none cookie=none host=localhost:8000 body=\n" {
		t.Errorf("with the token header: %d %q", resp.StatusCode, body)
	}
	if resp, body := get("/api/v1/vms", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+e.key()) }); resp.StatusCode != http.StatusOK ||
		!strings.HasPrefix(body, "method=GET path=/api/v1/vms auth=none") {
		t.Errorf("an API path with an admin key on the preview host: %d %q; want the service's answer", resp.StatusCode, body)
	}
	resp, _ := get(strings.TrimPrefix(p.TokenURL, "http://"+host), nil)
	cookies := resp.Cookies()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != p.URL || len(cookies) != 1 || !cookies[0].HttpOnly {
		t.Fatalf("the token URL: %d, Location %q, cookies %v", resp.StatusCode, resp.Header.Get("Location"), cookies)
	}
	if resp, body := get("/page", func(r *http.Request) { r.AddCookie(cookies[0]) }); resp.StatusCode != http.StatusOK ||
		!strings.HasPrefix(body, "method=GET path=/page auth=none cookie=none") {
		t.Errorf("with the preview cookie: %d %q", resp.StatusCode, body)
	}
	byName := func(r *http.Request) { withToken(r); r.Host = "8000-web.preview.test:" + port }
	if resp, body := get("/", byName); resp.StatusCode != http.StatusNotFound {
		t.Errorf("the sandbox's name as the preview host: %d %q; want 404 (names are unique only per project)", resp.StatusCode, body)
	}
	if resp, body := get("/", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a token: %d %q; want 401", resp.StatusCode, body)
	}
	if out, code := e.aether("", "preview", "web", "--revoke", p.ID); code != 0 {
		t.Fatalf("aether preview --revoke: %d %s", code, out)
	}
	if resp, body := get("/", withToken); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a revoked token: %d %q; want 401", resp.StatusCode, body)
	}
}

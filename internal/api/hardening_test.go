package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/store"
)

// request serves one request built by the caller's edits of a JSON POST
// with the admin key to a loopback Host.
func (a *testAPI) request(t *testing.T, method, path, body string, edit func(r *http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), method, path, strings.NewReader(body))
	req.Host = "127.0.0.1:8080"
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.admin)
	if edit != nil {
		edit(req)
	}
	rec := httptest.NewRecorder()
	a.s.ServeHTTP(rec, req)
	return rec
}

// TestCSRFAndRebinding: what a web page can send is refused before any
// handler runs, and nothing is queued: a text/plain POST (415), a foreign
// Origin (403), a Host that is not ours (421).
func TestCSRFAndRebinding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(r *http.Request)
		want int
	}{
		{"text/plain", func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, http.StatusUnsupportedMediaType},
		{"form", func(r *http.Request) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") }, http.StatusUnsupportedMediaType},
		{"no content type", func(r *http.Request) { r.Header.Del("Content-Type") }, http.StatusUnsupportedMediaType},
		{"foreign origin", func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") }, http.StatusForbidden},
		{"cross-site fetch", func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") }, http.StatusForbidden},
		{"rebound host", func(r *http.Request) { r.Host = "evil.example:8080" }, http.StatusMisdirectedRequest},
		{"rebound host without port", func(r *http.Request) { r.Host = "attacker.test" }, http.StatusMisdirectedRequest},
		{"json charset is fine", func(r *http.Request) { r.Header.Set("Content-Type", "application/json; charset=utf-8") }, http.StatusAccepted},
		{"localhost is fine", func(r *http.Request) { r.Host = "localhost:8080" }, http.StatusAccepted},
		{"IP literal is fine", func(r *http.Request) { r.Host = "[::1]:8080" }, http.StatusAccepted},
		{"same origin is fine", func(r *http.Request) { r.Header.Set("Origin", "http://127.0.0.1:8080") }, http.StatusAccepted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t)
			rec := a.request(t, "POST", "/api/v1/vms", `{"name":"x"}`, tt.edit)
			if rec.Code != tt.want {
				t.Fatalf("POST /api/v1/vms with %s = %d %s; want %d", tt.name, rec.Code, rec.Body, tt.want)
			}
			if n := len(a.q.messages()); tt.want != http.StatusAccepted && n != 0 {
				t.Errorf("%d tasks queued by a refused request", n)
			}
		})
	}
}

// TestAllowedHosts: a configured name is served.
func TestAllowedHosts(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.s.hosts["aether.internal"] = true
	if rec := a.request(t, "GET", "/api/v1/vms", "", func(r *http.Request) { r.Host = "Aether.Internal.:443" }); rec.Code != http.StatusOK {
		t.Errorf("allowed host = %d %s; want 200", rec.Code, rec.Body)
	}
}

// TestRateLimit: past its burst a key gets 429 with Retry-After, per route
// class, and another key is unaffected.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.s.limits = newLimiters(RateLimits{Default: Rate{PerSecond: 0.001, Burst: 3}, Create: Rate{PerSecond: 0.001, Burst: 1}})
	for i := range 3 {
		if rec := a.request(t, "GET", "/api/v1/vms", "", nil); rec.Code != http.StatusOK {
			t.Fatalf("request %d within the burst = %d", i, rec.Code)
		}
	}
	rec := a.request(t, "GET", "/api/v1/vms", "", nil)
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), "rate_limited") {
		t.Fatalf("past the burst = %d %s; want 429 rate_limited", rec.Code, rec.Body)
	}
	if ra := rec.Header().Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After = %q; want seconds to wait", ra)
	}
	if rec := a.request(t, "POST", "/api/v1/vms", `{"name":"c1"}`, nil); rec.Code != http.StatusAccepted {
		t.Errorf("create class has its own bucket: %d %s", rec.Code, rec.Body)
	}
	other := a.key(t, store.DefaultProjectID, store.RoleMember, nil)
	if status, body := a.doAs(t, other, "GET", "/api/v1/vms", ""); status != http.StatusOK {
		t.Errorf("another key = %d %s; want 200", status, body)
	}
}

// TestLimiterMapIsBounded: idle limiters are dropped once the map is full.
func TestLimiterMapIsBounded(t *testing.T) {
	t.Parallel()
	ls := newLimiters(RateLimits{Default: Rate{PerSecond: 1}})
	now := time.Now()
	ls.now = func() time.Time { return now }
	for i := range maxLimiters + 10 {
		if i == maxLimiters {
			now = now.Add(2 * time.Minute)
		}
		ls.allow(string(rune(i)), classDefault)
	}
	if len(ls.m) > maxLimiters {
		t.Errorf("%d limiters; want at most %d", len(ls.m), maxLimiters)
	}
}

// TestImageBuildPolicy: a suite outside the allowlist or a mirror in the
// request is 422 and creates no task row.
func TestImageBuildPolicy(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"suite":"jammy"}`, `{"mirror":"http://evil.example/debian"}`, `{"ref":"aetherium/base:bookworm","suite":"sid"}`} {
		a := newTestAPI(t)
		rec := a.request(t, "POST", "/api/v1/images", body, nil)
		tasks, err := a.st.TaskList(t.Context(), &store.TaskListParams{ProjectID: store.DefaultProjectID})
		if err != nil {
			t.Fatal(err)
		}
		if rec.Code != http.StatusUnprocessableEntity || len(tasks) != 0 || len(a.q.messages()) != 0 {
			t.Errorf("POST /api/v1/images %s = %d %s with %d task rows; want 422 and none", body, rec.Code, rec.Body, len(tasks))
		}
	}
}

// TestStdinLineIsBounded: an exec with stdin whose request line never ends
// is refused once it passes the JSON cap instead of being buffered.
func TestStdinLineIsBounded(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.vm(t, "r", store.VMRunning)
	body := `{"command":"` + strings.Repeat("a", maxJSONBody+10)
	rec := a.request(t, "POST", "/api/v1/vms/r/exec?stdin=true", body, nil)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("endless request line = %d %.200s; want 413", rec.Code, rec.Body)
	}
}

// TestSecretsNeverRead: an execute's env is not in the task as read back.
func TestSecretsNeverRead(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.vm(t, "r", store.VMRunning)
	rec := a.request(t, "POST", "/api/v1/vms/r/execute", `{"command":"env","env":{"TOKEN":"hunter2"}}`, nil)
	var acc struct {
		TaskID string `json:"task_id"`
	}
	if rec.Code != http.StatusAccepted || json.Unmarshal(rec.Body.Bytes(), &acc) != nil {
		t.Fatalf("execute = %d %s", rec.Code, rec.Body)
	}
	for _, path := range []string{"/api/v1/tasks/" + acc.TaskID, "/api/v1/tasks"} {
		if rec := a.request(t, "GET", path, "", nil); rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "hunter2") {
			t.Errorf("GET %s = %d %s; want 200 without the secret", path, rec.Code, rec.Body)
		}
	}
}

// TestMetricsToken: /metrics takes the metrics token, not a wrong one.
func TestMetricsToken(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.s.cfg.MetricsToken = "scrape-me"
	for _, tt := range []struct {
		header string
		want   int
	}{{"Bearer scrape-me", 200}, {"Bearer scrape-you", 401}} {
		rec := a.request(t, "GET", "/metrics", "", func(r *http.Request) { r.Header.Set("Authorization", tt.header) })
		if rec.Code != tt.want {
			t.Errorf("/metrics with %q = %d; want %d", tt.header, rec.Code, tt.want)
		}
	}
}

// TestAudit: mutating requests are recorded with key prefix, project,
// action, object and status; reads are not.
func TestAudit(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.vm(t, "r", store.VMRunning)
	a.request(t, "POST", "/api/v1/vms/id-r/pause", "", nil)
	a.request(t, "GET", "/api/v1/vms", "", nil)
	a.request(t, "POST", "/api/v1/projects", `{"name":"p1"}`, nil)
	var list struct {
		Entries []struct {
			KeyPrefix string `json:"key_prefix"`
			ProjectID string `json:"project_id"`
			Action    string `json:"action"`
			Object    string `json:"object"`
			Status    int    `json:"status"`
		} `json:"entries"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec := a.request(t, "GET", "/api/v1/audit", "", nil)
		list.Entries = nil
		json.Unmarshal(rec.Body.Bytes(), &list)
		if len(list.Entries) >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	prefix := a.admin[:11]
	want := []string{"POST /api/v1/projects  201 default " + prefix, "POST /api/v1/vms/{id}/pause id-r 202 default " + prefix}
	var got []string
	for _, e := range list.Entries {
		got = append(got, strings.Join([]string{e.Action, e.Object, itoa(e.Status), e.ProjectID, e.KeyPrefix}, " "))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestExecStdinRefusedWhileStdinIsOpen: an exec with stdin on a missing
// sandbox gets its 404 while the client is still sending stdin. Regression:
// net/http drained the unread body before writing the refusal, so a client
// that holds stdin open until the command answers (the SDKs' interactive
// exec) waited for the server's read timeout; here, with none, for ever.
func TestExecStdinRefusedWhileStdinIsOpen(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	srv := httptest.NewServer(a.s)
	defer srv.Close()
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte(`{"command":"cat"}` + "\n"))
	req, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/api/v1/vms/nope/exec?stdin=true", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.admin)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("exec with open stdin on a missing sandbox = %d; want 404", resp.StatusCode)
	}
}

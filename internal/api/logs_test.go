package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/internal/logs"
	"github.com/aetherium/aetherium/internal/logs/sqllog"
	"github.com/aetherium/aetherium/internal/store"
)

// newTestLogs is a running pipeline on a real SQLite log store.
func newTestLogs(t testing.TB) *logs.Pipeline {
	t.Helper()
	st, err := sqllog.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "logs.db"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := logs.New(logs.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	p.Start(t.Context())
	t.Cleanup(func() {
		p.Stop(context.Background())
		st.Close()
	})
	return p
}

// appendLogs writes records straight to the store (the pipeline is async).
func appendLogs(t *testing.T, a *testAPI, recs ...logs.Record) {
	t.Helper()
	for i := range recs {
		if recs[i].Time.IsZero() {
			recs[i].Time = time.Now()
		}
	}
	if err := a.logs.Store().Append(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
}

func postLogQuery(t *testing.T, a *testAPI, body string) (int, apiv1.LogPage, string) {
	t.Helper()
	code, out := a.do(t, http.MethodPost, "/api/v1/logs/query", body)
	var page apiv1.LogPage
	if code == http.StatusOK {
		if err := json.Unmarshal([]byte(out), &page); err != nil {
			t.Fatal(err)
		}
	}
	return code, page, out
}

func TestLogQuery(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	vm := a.vm(t, "web", store.VMRunning)
	def := store.DefaultProjectID
	appendLogs(t, a,
		logs.Record{Line: "hello from web", Labels: logs.Labels{Project: def, VMID: vm.ID, Stream: logs.StreamStdout}},
		logs.Record{Line: "oops", Labels: logs.Labels{Project: def, VMID: vm.ID, Stream: logs.StreamStderr}},
		logs.Record{Line: "other sandbox", Labels: logs.Labels{Project: def, VMID: "other", Stream: logs.StreamStdout}},
		logs.Record{Line: "hello from another project", Labels: logs.Labels{Project: "p2", VMID: vm.ID, Stream: logs.StreamStdout}},
		logs.Record{Line: "aetherd itself", Labels: logs.Labels{Stream: logs.StreamAetherd}},
	)
	tests := []struct {
		name, body string
		want       []string
	}{
		{"everything of the project, newest first", `{}`, []string{"other sandbox", "oops", "hello from web"}},
		{"by sandbox name", `{"vm_id":"web","direction":"forward"}`, []string{"hello from web", "oops"}},
		{"by stream", `{"stream":"stderr"}`, []string{"oops"}},
		{"text match never crosses projects", `{"contains":"hello"}`, []string{"hello from web"}},
		{"limit", `{"limit":1}`, []string{"other sandbox"}},
	}
	for _, tt := range tests {
		code, page, body := postLogQuery(t, a, tt.body)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", tt.name, code, body)
		}
		var got []string
		for _, r := range page.Records {
			got = append(got, r.Line)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
	_, page, _ := postLogQuery(t, a, `{"limit":2}`)
	if page.Next == "" {
		t.Fatal("no next cursor on a full page")
	}
	_, rest, _ := postLogQuery(t, a, `{"limit":2,"cursor":"`+page.Next+`"}`)
	if len(rest.Records) != 1 || rest.Records[0].Line != "hello from web" || rest.Next != "" {
		t.Errorf("second page %+v", rest)
	}
	for _, tt := range []struct {
		body string
		code int
	}{
		{`{"vm_id":"nope"}`, http.StatusNotFound},
		{`{"limit":100000}`, http.StatusBadRequest},
		{`{"direction":"up"}`, http.StatusBadRequest},
		{`{"cursor":"x"}`, http.StatusBadRequest},
		{`{"unknown":1}`, http.StatusBadRequest},
	} {
		if code, _, body := postLogQuery(t, a, tt.body); code != tt.code {
			t.Errorf("%s: %d %s, want %d", tt.body, code, body, tt.code)
		}
	}
}

func TestLogStream(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	vm := a.vm(t, "web", store.VMRunning)
	def := store.DefaultProjectID
	appendLogs(t, a,
		logs.Record{Line: "old 1", Labels: logs.Labels{Project: def, VMID: vm.ID, Stream: logs.StreamStdout}},
		logs.Record{Line: "old 2", Labels: logs.Labels{Project: def, VMID: vm.ID, Stream: logs.StreamStdout}})
	srv := httptest.NewServer(a.s)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/api/v1/logs/stream?vm_id=web&tail=1",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + a.admin}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	read := func() string {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var m apiv1.LogStreamMessage
		if err := json.Unmarshal(b, &m); err != nil || m.Record == nil {
			t.Fatalf("message %s: %v", b, err)
		}
		return m.Record.Line
	}
	if got := read(); got != "old 2" {
		t.Errorf("backlog: got %q, want the last record", got)
	}
	a.logs.Emit(logs.Record{Line: "another project", Labels: logs.Labels{Project: "p2", VMID: vm.ID}})
	a.logs.Emit(logs.Record{Line: "other sandbox", Labels: logs.Labels{Project: def, VMID: "other"}})
	a.logs.Emit(logs.Record{Line: "live", Labels: logs.Labels{Project: def, VMID: vm.ID, Stream: logs.StreamStdout}})
	if got := read(); got != "live" {
		t.Errorf("live: got %q, want the matching new record", got)
	}
	// Bad parameters are refused before the upgrade.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/logs/stream?tail=-1", nil)
	req.Header.Set("Authorization", "Bearer "+a.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body.String(), "tail") {
		t.Errorf("tail=-1: %d %s", resp.StatusCode, body.String())
	}
}

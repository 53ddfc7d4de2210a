package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// FuzzAPI sends arbitrary path values, queries and bodies to every route of
// the real route table over a real SQLite store, as an admin: no input may
// panic a handler or get a 5xx. make test runs it for a short while.
func FuzzAPI(f *testing.F) {
	a := newTestAPI(f)
	a.vm(f, "r", store.VMRunning)
	a.sb.ExecImpl = func(context.Context, *store.VM, *task.ExecParams, agentclient.ExecIO) (*store.Execution, error) {
		return &store.Execution{ID: "e"}, nil
	}
	routes := a.s.routes()
	for i, rt := range routes {
		f.Add(uint8(i), "r", "", []byte(`{}`))
		f.Add(uint8(i), "id-r", "limit=5&cursor=x&wait=1ms", []byte(`{"name":"n1","command":"true","vcpus":1}`))
		if strings.HasPrefix(rt.pattern, "POST /api/v1/vms") {
			f.Add(uint8(i), "r", "stdin=true", []byte("{\"command\":\"cat\"}\nhello"))
		}
	}
	f.Add(uint8(0), "default", "", []byte(`{"name":"p","quota":{"sandboxes":-1}}`))
	f.Add(uint8(0), "x", "", []byte(`{"role":"admin","ttl_seconds":1e99}`))
	f.Fuzz(func(t *testing.T, i uint8, id, query string, body []byte) {
		rt := routes[int(i)%len(routes)]
		method, path, _ := strings.Cut(rt.pattern, " ")
		path = strings.NewReplacer("{id}", url.PathEscape(id), "{name}", url.PathEscape(id)).Replace(path)
		if query != "" {
			path += "?" + query
		}
		// Streams and long-polls end with the request's context.
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, "http://127.0.0.1:8080"+path, strings.NewReader(string(body)))
		if err != nil {
			t.Skip()
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+a.admin)
		if rt.access == internal {
			req.Header.Set("Authorization", "Bearer secret")
		}
		rec := httptest.NewRecorder()
		a.s.ServeHTTP(rec, req)
		// A 5xx after the request's own deadline is the client's timeout
		// seen by the store (a loaded host), not a handler's fault.
		if rec.Code >= 500 && rec.Code != http.StatusNotImplemented && ctx.Err() == nil {
			t.Errorf("%s %s %q = %d %s", method, path, body, rec.Code, rec.Body)
		}
	})
}

package api

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/auth"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// BenchmarkExecAuth measures what the guard (key check, project, rate
// limit, media type, exec quota, audit) adds to an exec round trip over
// loopback HTTP, against the same handler served without it, in the same
// run and alternating so both see the same machine. The sandbox is a fake
// that answers at once, so the difference is the guard's cost alone.
func BenchmarkExecAuth(b *testing.B) {
	a := newTestAPI(b)
	vm := a.vm(b, "r", store.VMRunning)
	a.sb.ExecImpl = func(_ context.Context, _ *store.VM, _ *task.ExecParams, eio agentclient.ExecIO) (*store.Execution, error) {
		eio.Stdout.Write([]byte("hi\n"))
		return &store.Execution{ID: "e"}, nil
	}
	a.s.limits = newLimiters(RateLimits{Exec: Rate{PerSecond: 1e9, Burst: 1e9}}) // measured, never hit
	guarded := httptest.NewServer(a.s)
	defer guarded.Close()
	// Without auth: the bare handler, with the principal the guard would set.
	p := &auth.Principal{KeyPrefix: "ae_bench", ProjectID: store.DefaultProjectID, Role: store.RoleAdmin}
	bare := http.NewServeMux()
	bare.HandleFunc("POST /api/v1/vms/{id}/exec", func(w http.ResponseWriter, r *http.Request) {
		s := a.s
		s.handleVMExec(w, r.WithContext(auth.WithPrincipal(r.Context(), p)), a.sb)
	})
	open := httptest.NewServer(bare)
	defer open.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	exec := func(base string, key string) time.Duration {
		req, _ := http.NewRequest("POST", base+"/api/v1/vms/"+vm.ID+"/exec", strings.NewReader(`{"command":"true"}`))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
		return time.Since(start)
	}
	for range 200 { // warm up connections, caches and the key cache
		exec(guarded.URL, a.admin)
		exec(open.URL, "")
	}
	var with, without []time.Duration
	b.ResetTimer()
	for b.Loop() {
		with = append(with, exec(guarded.URL, a.admin))
		without = append(without, exec(open.URL, ""))
	}
	b.StopTimer()
	p50 := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	pw, po := p50(with), p50(without)
	b.ReportMetric(float64(pw.Microseconds()), "p50-auth-µs")
	b.ReportMetric(float64(po.Microseconds()), "p50-noauth-µs")
	b.Logf("exec round trip p50: with auth %v, without %v, added %v (n=%d each)", pw, po, pw-po, len(with))
}

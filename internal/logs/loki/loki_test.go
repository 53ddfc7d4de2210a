package loki

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aetherium/aetherium/internal/logs"
	"github.com/aetherium/aetherium/internal/testbin"
)

func records(run string, from, n int) []logs.Record {
	recs := make([]logs.Record, n)
	for i := range recs {
		recs[i] = logs.Record{Time: time.Now(), Line: fmt.Sprintf("%s line %d", run, from+i),
			Labels: logs.Labels{Project: "default", VMID: "vm-" + run, TaskID: "task-1", ExecutionID: "exec-1",
				Stream: logs.StreamStdout, Level: logs.LevelInfo}}
	}
	return recs
}

// waitCount polls VictoriaLogs until query matches want entries: a
// readiness deadline (ingestion is asynchronous), not a timed assertion.
func waitCount(t *testing.T, vl *testbin.VictoriaLogs, query string, want int) []map[string]string {
	t.Helper()
	var got []map[string]string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = vl.Query(query); len(got) >= want {
			break
		}
	}
	if len(got) != want {
		t.Fatalf("query %q: %d entries, want %d", query, len(got), want)
	}
	return got
}

func newProvider(t *testing.T, cfg Config) (*logs.Shipper, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Metrics = logs.NewMetrics(reg)
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p, reg
}

func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.Metric {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	return 0
}

// TestVictoriaLogsLabelsAndMetadata pushes to a real Loki-compatible server
// and reads back what arrived: IDs are structured metadata, not stream
// labels, unless listed in IDLabels.
func TestVictoriaLogsLabelsAndMetadata(t *testing.T) {
	t.Parallel()
	vl := testbin.StartVictoriaLogs(t)
	plain, _ := newProvider(t, Config{URL: vl.PushURL(), Labels: map[string]string{"service": "aetherium"}, BatchWait: time.Millisecond})
	withID, _ := newProvider(t, Config{URL: vl.PushURL(), IDLabels: []string{"vm_id"}, BatchWait: time.Millisecond})
	recs := records("a", 0, 3)
	recs[2].Truncated = true
	plain.Offer(recs)
	withID.Offer(records("b", 0, 2))

	got := waitCount(t, vl, `"a line" | sort by (_msg)`, 3)
	e := got[0]
	if e["_msg"] != "a line 0" || e["vm_id"] != "vm-a" || e["task_id"] != "task-1" || e["execution_id"] != "exec-1" || e["project"] != "default" {
		t.Errorf("entry %v: want the line with its IDs as fields", e)
	}
	if s := e["_stream"]; strings.Contains(s, "vm_id") || strings.Contains(s, "task_id") || !strings.Contains(s, `service="aetherium"`) || !strings.Contains(s, `stream="stdout"`) {
		t.Errorf("stream labels %s: want service, stream and level, no IDs", s)
	}
	if got[2]["truncated"] != "true" {
		t.Errorf("truncated record %v: want truncated=true", got[2])
	}
	b := waitCount(t, vl, `"b line"`, 2)
	if s := b[0]["_stream"]; !strings.Contains(s, `vm_id="vm-b"`) {
		t.Errorf("stream labels %s: want vm_id, configured as a label", s)
	}
}

// TestVictoriaLogsOutage stops the server in the middle: records pushed
// while it is down are retried and arrive once it is back, and with a
// buffer too small for the outage exactly the dropped ones are counted.
func TestVictoriaLogsOutage(t *testing.T) {
	t.Parallel()
	vl := testbin.StartVictoriaLogs(t)
	roomy, roomyReg := newProvider(t, Config{URL: vl.PushURL(), BatchSize: 10, BatchWait: time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	tight, tightReg := newProvider(t, Config{URL: vl.PushURL(), BatchSize: 10, Buffer: 30, BatchWait: time.Millisecond, MaxBackoff: 100 * time.Millisecond})

	roomy.Offer(records("roomy", 0, 50))
	tight.Offer(records("tight", 0, 20))
	waitCount(t, vl, `"roomy line"`, 50)
	waitCount(t, vl, `"tight line"`, 20)

	vl.Stop()
	roomy.Offer(records("roomy", 50, 100))
	for i := range 10 { // in small steps, as a sandbox would
		tight.Offer(records("tight", 20+10*i, 10))
	}
	// Both keep failing while the server is down: wait for a failed push of each.
	for deadline := time.Now().Add(30 * time.Second); metric(t, roomyReg, "aether_logs_push_errors_total") == 0 ||
		metric(t, tightReg, "aether_logs_push_errors_total") == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no failed push while the server was down")
		}
	}
	vl.Start()

	waitCount(t, vl, `"roomy line"`, 150)
	if d := metric(t, roomyReg, "aether_logs_dropped_total"); d != 0 {
		t.Errorf("roomy buffer dropped %v records", d)
	}
	// tight: 100 offered during the outage into a buffer of 30 (10 of which
	// may be the batch in flight): what did not arrive was counted.
	var dropped float64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		dropped = metric(t, tightReg, "aether_logs_dropped_total")
		if metric(t, tightReg, "aether_logs_shipped_total")+dropped == 120 {
			break
		}
	}
	if dropped == 0 {
		t.Error("tight buffer dropped nothing during the outage")
	}
	got := waitCount(t, vl, `"tight line"`, 120-int(dropped))
	t.Logf("tight: %d arrived, %v dropped and counted", len(got), dropped)
}

// TestRefusedBatchIsDroppedNotRetried: a 4xx (bad request) would be refused
// forever, so the batch is counted as dropped and the next one goes out.
func TestRefusedBatchIsDroppedNotRetried(t *testing.T) {
	t.Parallel()
	calls := make(chan int, 10)
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		calls <- n
		if n == 1 {
			http.Error(w, "entry too far behind", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	p, reg := newProvider(t, Config{URL: srv.URL, BatchSize: 1, BatchWait: time.Millisecond})
	p.Offer(records("x", 0, 2))
	<-calls
	<-calls
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d, s := metric(t, reg, "aether_logs_dropped_total"), metric(t, reg, "aether_logs_shipped_total"); d != 1 || s != 1 {
		t.Errorf("dropped %v shipped %v, want 1 and 1", d, s)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{{URL: "loki:3100"}, {URL: "http://l", IDLabels: []string{"sandbox"}},
		{URL: "http://l", Labels: map[string]string{"vm_id": "x"}}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// BenchmarkPush measures lines/s the Loki provider delivers to a real
// VictoriaLogs (batches of 1000), from Offer until the peer acknowledged.
func BenchmarkPush(b *testing.B) {
	vl := testbin.StartVictoriaLogs(b)
	reg := prometheus.NewRegistry()
	p, err := New(Config{URL: vl.PushURL(), BatchWait: 10 * time.Millisecond, Metrics: logs.NewMetrics(reg)})
	if err != nil {
		b.Fatal(err)
	}
	recs := records("bench", 0, 10000)
	shipped := func() float64 {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "aether_logs_shipped_total" {
				return mf.Metric[0].GetCounter().GetValue()
			}
		}
		return 0
	}
	sent := 0
	for b.Loop() {
		p.Offer(recs)
		sent += len(recs)
		for shipped() < float64(sent) {
			time.Sleep(time.Millisecond)
		}
	}
	b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "lines/s")
	p.Close(context.Background())
}

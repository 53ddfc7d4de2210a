package e2e_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/task"
	"github.com/aetherium/aetherium/internal/testbin"
)

// newConfiguredEnv starts an embedded aetherd on Docker with the YAML
// config text.
func newConfiguredEnv(tb testing.TB, config string) *testEnv {
	tb.Helper()
	cfg := filepath.Join(tb.TempDir(), "aetherd.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		tb.Fatal(err)
	}
	e := newEnv(tb)
	e.proc = e.add("--runtime", "docker", "--config", cfg)
	e.connect(e.proc)
	e.start()
	return e
}

// metric sums the /metrics samples whose name and labels start with
// prefix (aether_logs_dropped_total sums every where="…").
func (e *testEnv) metric(prefix string) float64 {
	e.t.Helper()
	resp, err := e.http().Get("http://" + e.addr + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			e.t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// waitMetric waits until the sum of the prefixes' samples reaches want and
// returns how long that took from start. A readiness deadline, not a
// timed assertion.
func (e *testEnv) waitMetric(start time.Time, want float64, prefixes ...string) time.Duration {
	e.t.Helper()
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var got float64
		for _, p := range prefixes {
			got += e.metric(p)
		}
		if got >= want {
			return time.Since(start)
		}
	}
	e.t.Fatalf("metrics %v never reached %.0f", prefixes, want)
	return 0
}

// logCounters are the records stored and dropped so far: every line an
// exec prints ends up in one of them.
func (e *testEnv) logCounters() (stored, dropped float64) {
	return e.metric("aether_logs_stored_total"), e.metric("aether_logs_dropped_total")
}

// BenchmarkExecLogIngest runs one exec printing 1M lines (seq) through a real
// aetherd, whose worker turns every line into a log record: with the local
// store only, and with the Loki pusher to a real VictoriaLogs as well. In
// the same iterations the same exec writes its lines to a file inside the
// sandbox. It reports, per setup, how long the exec took, how long until
// every line was stored (or shipped) or counted as dropped, and how many
// were dropped: the pipeline never makes an exec wait, so a burst beyond its
// buffer is dropped and counted.
func BenchmarkExecLogIngest(b *testing.B) {
	const n = 1_000_000
	vl := testbin.StartVictoriaLogs(b)
	local := newConfiguredEnv(b, "logging: {}\n")
	loki := newConfiguredEnv(b, "logging:\n  providers: [loki]\n  loki:\n    url: "+vl.PushURL()+"\n")
	for _, e := range []*testEnv{local, loki} {
		e.MustCreateVM(&client.CreateVMRequest{Name: "ingest"})
	}
	seq := &task.ExecParams{Command: "seq", Args: []string{strconv.Itoa(n)}}
	var file, localExec, localDone, lokiExec, lokiStored, lokiShipped samples
	var localDropped, lokiDropped, lokiShipDropped float64
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if out, code := local.MustExec("ingest", fmt.Sprintf("seq %d > /tmp/lines && wc -l < /tmp/lines", n)); code != 0 || strings.TrimSpace(out) != strconv.Itoa(n) {
			b.Fatalf("seq to a file: %q exit %d", out, code)
		}
		file = append(file, time.Since(start))

		st, dr := local.logCounters()
		start = time.Now()
		if res, err := local.c.Exec(b.Context(), "ingest", seq, nil, nil, nil); err != nil || *res.ExitCode != 0 {
			b.Fatalf("exec: %+v %v", res, err)
		}
		localExec = append(localExec, time.Since(start))
		localDone = append(localDone, local.waitMetric(start, st+dr+n, "aether_logs_stored_total", "aether_logs_dropped_total"))
		localDropped += local.metric("aether_logs_dropped_total") - dr

		st, dr = loki.logCounters()
		shipping := []string{`aether_logs_shipped_total{provider="loki"}`, `aether_logs_dropped_total{where="loki"}`,
			`aether_logs_dropped_total{where="pipeline"}`}
		var shipBase float64
		for _, p := range shipping {
			shipBase += loki.metric(p)
		}
		shipDropped := loki.metric(shipping[1])
		start = time.Now()
		if res, err := loki.c.Exec(b.Context(), "ingest", seq, nil, nil, nil); err != nil || *res.ExitCode != 0 {
			b.Fatalf("exec: %+v %v", res, err)
		}
		lokiExec = append(lokiExec, time.Since(start))
		lokiStored = append(lokiStored, loki.waitMetric(start, st+dr+n, "aether_logs_stored_total", "aether_logs_dropped_total"))
		lokiShipped = append(lokiShipped, loki.waitMetric(start, shipBase+n, shipping...))
		lokiDropped += loki.metric("aether_logs_dropped_total") - dr
		lokiShipDropped += loki.metric(shipping[1]) - shipDropped
	}
	perS := func(lines float64, d time.Duration) float64 { return lines / d.Seconds() }
	N := float64(b.N)
	b.ReportMetric(perS(n, file.pct(0.5)), "file-lines/s")
	b.ReportMetric(perS(n, localExec.pct(0.5)), "exec-lines/s")
	b.ReportMetric(perS(n-localDropped/N, localDone.pct(0.5)), "stored-lines/s")
	b.ReportMetric(perS(n-lokiDropped/N, lokiShipped.pct(0.5)), "loki-lines/s")
	b.Logf("1M lines to a file in the sandbox: %.0f lines/s (%.2fs)", perS(n, file.pct(0.5)), file.pct(0.5).Seconds())
	b.Logf("local store: exec %.2fs (%.0f lines/s); all stored or dropped after %.2fs; dropped %.0f of %d per exec; stored %.0f lines/s",
		localExec.pct(0.5).Seconds(), perS(n, localExec.pct(0.5)), localDone.pct(0.5).Seconds(), localDropped/N, n,
		perS(n-localDropped/N, localDone.pct(0.5)))
	b.Logf("local store + loki → VictoriaLogs: exec %.2fs (%.0f lines/s); stored/dropped after %.2fs; shipped/dropped after %.2fs; dropped %.0f per exec (%.0f by the loki buffer); shipped %.0f lines/s",
		lokiExec.pct(0.5).Seconds(), perS(n, lokiExec.pct(0.5)), lokiStored.pct(0.5).Seconds(), lokiShipped.pct(0.5).Seconds(),
		lokiDropped/N, lokiShipDropped/N, perS(n-lokiDropped/N, lokiShipped.pct(0.5)))
}

// BenchmarkExecLogOverhead runs an exec printing 1000 lines through two
// aetherds, one turning every exec line into a log record (the default) and
// one with logging.exec_output off, alternating in the same iterations: the
// difference is what logging adds to an exec round-trip.
func BenchmarkExecLogOverhead(b *testing.B) {
	on := newConfiguredEnv(b, "logging: {}\n")
	off := newConfiguredEnv(b, "logging:\n  exec_output: false\n")
	for _, e := range []*testEnv{on, off} {
		e.MustCreateVM(&client.CreateVMRequest{Name: "rt"})
	}
	run := func(e *testEnv) time.Duration {
		start := time.Now()
		res, err := e.c.Exec(b.Context(), "rt", &task.ExecParams{Command: "seq", Args: []string{"1000"}}, nil, io.Discard, nil)
		if err != nil || *res.ExitCode != 0 {
			b.Fatalf("exec: %+v %v", res, err)
		}
		return time.Since(start)
	}
	var withLogs, without samples
	for i := 0; i < b.N; i++ {
		withLogs = append(withLogs, run(on))
		without = append(without, run(off))
	}
	report(b, "exec seq 1000, logging on vs off", withLogs, without)
	page, err := off.c.QueryLogs(b.Context(), &apiv1.LogQuery{VMID: "rt", Stream: "stdout"})
	if err != nil || len(page.Records) != 0 {
		b.Errorf("logging.exec_output off: exec lines became records: %d, %v", len(page.Records), err)
	}
	if page, err := on.c.QueryLogs(b.Context(), &apiv1.LogQuery{VMID: "rt", Stream: "stdout"}); err != nil || len(page.Records) == 0 {
		b.Errorf("logging on: no exec line records: %v", err)
	}
}

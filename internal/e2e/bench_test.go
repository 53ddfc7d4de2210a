package e2e_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	containertypes "github.com/docker/docker/api/types/container"
	dockerclient "github.com/docker/docker/client"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
	"github.com/aetherium/aetherium/internal/testbin"
)

// samples collects durations and reports percentiles.
type samples []time.Duration

func (s samples) pct(p float64) time.Duration {
	c := slices.Clone(s)
	slices.Sort(c)
	return c[min(len(c)-1, int(float64(len(c))*p))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func report(b *testing.B, name string, ours, raw samples) {
	b.ReportMetric(ms(ours.pct(0.5)), "p50-ms")
	b.ReportMetric(ms(ours.pct(0.99)), "p99-ms")
	b.ReportMetric(ms(raw.pct(0.5)), "raw-p50-ms")
	b.ReportMetric(ms(raw.pct(0.99)), "raw-p99-ms")
	b.ReportMetric(float64(ours.pct(0.5))/float64(raw.pct(0.5)), "ratio-p50")
	b.Logf("%s: aetherium p50 %.2fms p99 %.2fms | raw p50 %.2fms p99 %.2fms | ratio p50 %.3f (n=%d)",
		name, ms(ours.pct(0.5)), ms(ours.pct(0.99)), ms(raw.pct(0.5)), ms(raw.pct(0.99)),
		float64(ours.pct(0.5))/float64(raw.pct(0.5)), len(ours))
}

// BenchmarkExecRoundTrip runs `true` in a running sandbox through the API's
// streaming exec (HTTP → aetherd → agent, recorded in executions) two ways,
// as argv with "shell":false (the headline: what Docker runs) and as a shell
// line (/bin/sh -c true, the default for a lone command), and, in the same
// iterations, the same command through the Docker Engine API on the same
// container (engineExec: what a program would use instead of us). For
// attribution it also times, in the same iterations, the agent's own exec of
// what aetherd asks of it, both ways, over a second connection the benchmark
// opens to the sandbox's agent socket: what Aetherium adds is the API exec
// minus that. AETHER_BENCH_STORE_SYNCHRONOUS=normal runs aetherd with
// store.synchronous: normal (an exec's record survives a process crash at
// once and a power loss from the next durable write on; the default, full,
// fsyncs it before the response ends).
func BenchmarkExecRoundTrip(b *testing.B) {
	var args []string
	if s := os.Getenv("AETHER_BENCH_STORE_SYNCHRONOUS"); s != "" {
		args = configArgs(b, "store:\n  synchronous: "+s+"\n")
	}
	e := newDockerEnv(b, args...)
	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "bench"})
	container := "aether-" + vm.ID
	docker := newDockerClient(b)
	agent := dialAgent(b, e.proc, vm.ID)
	var argv, shell, raw, directArgv, directShell samples
	apiExec := func(p *task.ExecParams) time.Duration {
		start := time.Now()
		res, err := e.c.Exec(b.Context(), vm.ID, p, nil, nil, nil)
		if err != nil || *res.ExitCode != 0 {
			b.Fatalf("exec %+v: %+v %v", p, res, err)
		}
		return time.Since(start)
	}
	agentExec := func(argv ...string) time.Duration {
		start := time.Now()
		if exit, err := agent.Exec(b.Context(), &agentproto.ExecRequest{Argv: argv}, agentclient.ExecIO{}); err != nil || exit.ExitCode != 0 {
			b.Fatalf("agent exec %q: %+v %v", argv, exit, err)
		}
		return time.Since(start)
	}
	// Ours run in a rotating order after each Engine API exec, so each is
	// as often the one that runs while dockerd and runc tear that exec down.
	ours := []func(){
		func() { argv = append(argv, apiExec(&task.ExecParams{Command: "true", Shell: new(false)})) },
		func() { shell = append(shell, apiExec(&task.ExecParams{Command: "true"})) },
		func() { directArgv = append(directArgv, agentExec("true")) },
		func() { directShell = append(directShell, agentExec("/bin/sh", "-c", "true")) },
	}
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := engineExec(b.Context(), docker, container); err != nil {
			b.Fatal(err)
		}
		raw = append(raw, time.Since(start))
		for j := range ours {
			ours[(i+j)%len(ours)]()
		}
	}
	report(b, "exec true (argv, shell:false) vs Docker Engine API exec", argv, raw)
	b.ReportMetric(ms(shell.pct(0.5)), "shell-p50-ms")
	b.ReportMetric(ms(shell.pct(0.99)), "shell-p99-ms")
	b.ReportMetric(float64(shell.pct(0.5))/float64(raw.pct(0.5)), "shell-ratio-p50")
	b.ReportMetric(ms(directArgv.pct(0.5)), "agent-p50-ms")
	b.ReportMetric(ms(directShell.pct(0.5)), "agent-shell-p50-ms")
	b.Logf("exec true as a shell line (/bin/sh -c true): p50 %.2fms p99 %.2fms, ratio p50 %.3f",
		ms(shell.pct(0.5)), ms(shell.pct(0.99)), float64(shell.pct(0.5))/float64(raw.pct(0.5)))
	for _, d := range []struct {
		name      string
		api, self samples
	}{{"true", argv, directArgv}, {"/bin/sh -c true", shell, directShell}} {
		b.Logf("the agent's own exec of %s (direct connection): p50 %.2fms p99 %.2fms; Aetherium adds p50 %.2fms",
			d.name, ms(d.self.pct(0.5)), ms(d.self.pct(0.99)), ms(d.api.pct(0.5)-d.self.pct(0.5)))
	}
}

// configArgs writes yaml to an aetherd config file and returns the flags
// that load it.
func configArgs(b *testing.B, yaml string) []string {
	cfg := filepath.Join(b.TempDir(), "aetherd.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		b.Fatal(err)
	}
	return []string{"--config", cfg}
}

// dialAgent opens a connection of its own to the agent of sandbox id of
// aetherd p (its Docker runtime's socket under the data dir).
func dialAgent(b *testing.B, p *proc, id string) *agentclient.Client {
	conn, err := sandbox.DialUnix(b.Context(), filepath.Join(p.dir, "data", "sandboxes", id, "agent.sock"))
	if err != nil {
		b.Fatal(err)
	}
	c, err := agentclient.Handshake(b.Context(), conn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func newDockerClient(tb testing.TB) *dockerclient.Client {
	c, err := dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// engineExec runs `true` in container through the Docker Engine API over its
// socket, as a program would: create the exec, attach (which starts it) and
// read its output to the end, then inspect it for the exit code.
func engineExec(ctx context.Context, c *dockerclient.Client, container string) error {
	ex, err := c.ContainerExecCreate(ctx, container, containertypes.ExecOptions{Cmd: []string{"true"}, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return fmt.Errorf("engine exec create: %w", err)
	}
	hj, err := c.ContainerExecAttach(ctx, ex.ID, containertypes.ExecAttachOptions{})
	if err != nil {
		return fmt.Errorf("engine exec attach: %w", err)
	}
	_, err = io.Copy(io.Discard, hj.Reader)
	hj.Close()
	if err != nil {
		return fmt.Errorf("engine exec output: %w", err)
	}
	in, err := c.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		return fmt.Errorf("engine exec inspect: %w", err)
	}
	if in.Running || in.ExitCode != 0 {
		return fmt.Errorf("engine exec: running %v, exit %d", in.Running, in.ExitCode)
	}
	return nil
}

// BenchmarkCreateExecDelete measures create → first exec output → delete
// through the API against `docker run --rm IMAGE true`. It reports two
// Aetherium numbers: until the delete was accepted (what the caller waits
// for; deletion is asynchronous) and until the delete task finished (the
// container is gone).
func BenchmarkCreateExecDelete(b *testing.B) {
	e := newDockerEnv(b)
	img := testbin.BaseImage(b)
	var ours, accepted, raw samples
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("cycle-%d", i)
		start := time.Now()
		acc, err := e.c.CreateVM(b.Context(), &client.CreateVMRequest{Name: name})
		if err != nil {
			b.Fatal(err)
		}
		if t, err := e.c.WaitTask(b.Context(), acc.TaskID, nil); err != nil || t.Status != store.TaskSucceeded {
			b.Fatalf("create: %+v %v", t, err)
		}
		var out bytes.Buffer
		if _, err := e.c.Exec(b.Context(), acc.VMID, &task.ExecParams{Command: "echo", Args: []string{"hi"}}, nil, &out, nil); err != nil || out.String() != "hi\n" {
			b.Fatalf("exec: %q %v", out.String(), err)
		}
		del, err := e.c.DeleteVM(b.Context(), acc.VMID)
		if err != nil {
			b.Fatal(err)
		}
		accepted = append(accepted, time.Since(start))
		if t, err := e.c.WaitTask(b.Context(), del.TaskID, nil); err != nil || t.Status != store.TaskSucceeded {
			b.Fatalf("delete: %+v %v", t, err)
		}
		ours = append(ours, time.Since(start))
		start = time.Now()
		if out, err := exec.Command("docker", "run", "--rm", img, "true").CombinedOutput(); err != nil {
			b.Fatalf("docker run: %v %s", err, out)
		}
		raw = append(raw, time.Since(start))
	}
	report(b, "create+exec+delete (delete finished)", ours, raw)
	b.Logf("create+exec+delete (delete accepted): p50 %.2fms p99 %.2fms, ratio p50 %.3f",
		ms(accepted.pct(0.5)), ms(accepted.pct(0.99)), float64(accepted.pct(0.5))/float64(raw.pct(0.5)))
	b.ReportMetric(float64(accepted.pct(0.5))/float64(raw.pct(0.5)), "accepted-ratio-p50")
}

// BenchmarkExecHop runs `true` through an api process that forwards to a
// worker process (Postgres + Redis, internal endpoint) and, in the same
// iterations, through an embedded single process: the difference is the
// added hop.
func BenchmarkExecHop(b *testing.B) {
	emb := newDockerEnv(b)
	emb.MustCreateVM(&client.CreateVMRequest{Name: "local"})
	cl := newClusterTB(b, 1)
	cl.MustCreateVM(&client.CreateVMRequest{Name: "remote"})
	var hop, local samples
	run := func(c *client.Client, vm string) time.Duration {
		start := time.Now()
		res, err := c.Exec(b.Context(), vm, &task.ExecParams{Command: "true", Args: []string{}}, nil, nil, nil)
		if err != nil || *res.ExitCode != 0 {
			b.Fatalf("exec %s: %+v %v", vm, res, err)
		}
		return time.Since(start)
	}
	for i := 0; i < b.N; i++ {
		hop = append(hop, run(cl.c, "remote"))
		local = append(local, run(emb.c, "local"))
	}
	report(b, "exec via api→worker vs embedded", hop, local)
}

// BenchmarkPoolCreate measures create from a warm pool → first exec output
// against `docker run --rm IMAGE true`, in the same iterations. The pool is
// refilled between iterations (not timed).
func BenchmarkPoolCreate(b *testing.B) {
	e := newDockerEnv(b)
	img := testbin.BaseImage(b)
	acc, err := e.c.CreateTemplate(b.Context(), &client.TemplateRequest{Name: "bench-pool", PoolSize: 2})
	if err != nil {
		b.Fatal(err)
	}
	e.mustWait(acc.TaskID)
	var ours, raw samples
	for i := 0; i < b.N; i++ {
		e.waitContainers(i+2, 60*time.Second) // i user sandboxes + a full pool
		start := time.Now()
		created, err := e.c.CreateVM(b.Context(), &client.CreateVMRequest{Name: fmt.Sprintf("p%d", i), Template: "bench-pool"})
		if err != nil {
			b.Fatal(err)
		}
		if created.Status != store.TaskSucceeded {
			b.Fatalf("create %d was not served from the pool (task %s)", i, created.Status)
		}
		var out bytes.Buffer
		if _, err := e.c.Exec(b.Context(), created.VMID, &task.ExecParams{Command: "echo", Args: []string{"hi"}}, nil, &out, nil); err != nil || out.String() != "hi\n" {
			b.Fatalf("exec: %q %v", out.String(), err)
		}
		ours = append(ours, time.Since(start))
		start = time.Now()
		if out, err := exec.Command("docker", "run", "--rm", img, "true").CombinedOutput(); err != nil {
			b.Fatalf("docker run: %v %s", err, out)
		}
		raw = append(raw, time.Since(start))
	}
	report(b, "pool create → first output vs docker run --rm", ours, raw)
}

// BenchmarkTemplateVsInstall measures creating a sandbox with Node.js from a
// template against creating one that installs Node.js at create time (the
// seed's way), in the same iterations.
func BenchmarkTemplateVsInstall(b *testing.B) {
	e := newDockerEnv(b)
	acc, err := e.c.CreateTemplate(b.Context(), &client.TemplateRequest{Name: "bench-node", Tools: []string{"nodejs@22"}})
	if err != nil {
		b.Fatal(err)
	}
	if tk := e.mustWait(acc.TaskID); tk.Status != store.TaskSucceeded {
		b.Fatalf("template build: %s", tk.Error)
	}
	var tpl, install samples
	timeCreate := func(req *client.CreateVMRequest) time.Duration {
		start := time.Now()
		vm := e.MustCreateVM(req)
		d := time.Since(start)
		if vm.ToolsInstalled["nodejs"] == "" {
			b.Fatalf("%s has no nodejs", vm.Name)
		}
		return d
	}
	for i := 0; i < b.N; i++ {
		tpl = append(tpl, timeCreate(&client.CreateVMRequest{Name: fmt.Sprintf("t%d", i), Template: "bench-node", AdditionalTools: []string{"nodejs@22"}}))
		install = append(install, timeCreate(&client.CreateVMRequest{Name: fmt.Sprintf("i%d", i), AdditionalTools: []string{"nodejs@22"}}))
	}
	report(b, "create with nodejs: from template vs install at create", tpl, install)
}

// BenchmarkMicroVMPoolCreate: on QEMU microVMs (TCG here), create from a
// warm pool → first exec output, against a cold create (boot) → first exec
// output of the same image, in the same iterations.
func BenchmarkMicroVMPoolCreate(b *testing.B) {
	needQEMU(b)
	e := newEnv(b)
	e.proc = e.add("--runtime", "qemu", "--qemu-accel", qemuAccel(), "--network", "none")
	e.connect(e.proc)
	e.start()
	acc, err := e.c.CreateTemplate(b.Context(), &client.TemplateRequest{Name: "mpool", PoolSize: 1})
	if err != nil {
		b.Fatal(err)
	}
	e.mustWait(acc.TaskID)
	echo := func(vmID string) {
		var out bytes.Buffer
		if _, err := e.c.Exec(b.Context(), vmID, &task.ExecParams{Command: "echo", Args: []string{"hi"}}, nil, &out, nil); err != nil || out.String() != "hi\n" {
			b.Fatalf("exec: %q %v", out.String(), err)
		}
	}
	var pooled, cold samples
	for i := 0; i < b.N; i++ {
		e.waitPoolReady("mpool", 1, 3*time.Minute)
		start := time.Now()
		created, err := e.c.CreateVM(b.Context(), &client.CreateVMRequest{Name: fmt.Sprintf("p%d", i), Template: "mpool"})
		if err != nil || created.Status != store.TaskSucceeded {
			b.Fatalf("create %d not served from the pool: %+v %v", i, created, err)
		}
		echo(created.VMID)
		pooled = append(pooled, time.Since(start))

		start = time.Now()
		vm := e.MustCreateVM(&client.CreateVMRequest{Name: fmt.Sprintf("c%d", i)})
		echo(vm.ID)
		cold = append(cold, time.Since(start))
	}
	report(b, "microVM (TCG) create from warm pool → first output vs cold boot", pooled, cold)
}

// BenchmarkExecLoad is the load run of BENCHMARKS.md (issue 13, goal 6):
// 16, then 64 concurrent clients (vegeta as a library, at the fastest rate
// they can go) doing exec `true` in one sandbox of a real embedded aetherd
// for 30 s each (AETHER_BENCH_LOAD_DURATION overrides), authenticated with
// the bootstrap admin key; and, in the same run, as many clients doing the
// same exec through the Docker Engine API on the same container (engineExec)
// for as long. It reports each side's errors (non-2xx, transport or Engine
// API failures), p50, p99 and execs/s. The exec rate limit is lifted in the
// config, so what is measured is the system, not the limiter. Run it with
// -benchtime 1x (make bench).
func BenchmarkExecLoad(b *testing.B) {
	dur := loadDuration(b, 30*time.Second)
	e := newEnv(b)
	e.proc = e.add("--runtime", "docker", "--config", writeConfig(b, "api:\n  rate_limits:\n    exec: {per_second: 0}\n"))
	e.connect(e.proc)
	e.start()
	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "load"})
	docker := newDockerClient(b)
	for b.Loop() {
		for _, clients := range []int{16, 64} {
			ours := vegetaLoad(e.execTargets(vm.ID), clients, dur)
			raw := engineLoad(b.Context(), docker, "aether-"+vm.ID, clients, dur)
			ours.report(b, fmt.Sprintf("exec load, %d clients, aetherium", clients), fmt.Sprintf("%d-", clients))
			raw.report(b, fmt.Sprintf("exec load, %d clients, Docker Engine API", clients), fmt.Sprintf("%d-engine-", clients))
			b.ReportMetric(ours.perSecond/raw.perSecond, fmt.Sprintf("%d-throughput-ratio", clients))
		}
	}
}

// loadDuration is AETHER_BENCH_LOAD_DURATION, or def.
func loadDuration(b *testing.B, def time.Duration) time.Duration {
	v := os.Getenv("AETHER_BENCH_LOAD_DURATION")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// execTargets are exec `true` requests in each of vms, with the
// deployment's admin key; a load run cycles through them.
func (e *testEnv) execTargets(vms ...string) []vegeta.Target {
	var ts []vegeta.Target
	for _, id := range vms {
		ts = append(ts, vegeta.Target{Method: http.MethodPost, URL: "http://" + e.addr + "/api/v1/vms/" + id + "/exec",
			Body:   []byte(`{"command":"true"}`),
			Header: http.Header{"Authorization": {"Bearer " + e.key()}, "Content-Type": {"application/json"}}})
	}
	return ts
}

// loadResult is what a load run measured.
type loadResult struct {
	requests, errors uint64
	p50, p99         time.Duration
	perSecond        float64
	detail           string
}

func (r loadResult) report(b *testing.B, name, prefix string) {
	b.ReportMetric(float64(r.errors), prefix+"errors")
	b.ReportMetric(ms(r.p50), prefix+"p50-ms")
	b.ReportMetric(ms(r.p99), prefix+"p99-ms")
	b.ReportMetric(r.perSecond, prefix+"execs/s")
	b.Logf("%s: %d requests, %d errors %s, p50 %.2fms p99 %.2fms, %.1f execs/s",
		name, r.requests, r.errors, r.detail, ms(r.p50), ms(r.p99), r.perSecond)
}

// vegetaLoad runs clients workers doing targets (round robin) as fast as
// they can for dur.
func vegetaLoad(targets []vegeta.Target, clients int, dur time.Duration) loadResult {
	attacker := vegeta.NewAttacker(vegeta.Workers(uint64(clients)), vegeta.MaxWorkers(uint64(clients)), vegeta.KeepAlive(true),
		vegeta.Connections(clients))
	var m vegeta.Metrics
	for res := range attacker.Attack(vegeta.NewStaticTargeter(targets...), vegeta.Rate{Freq: 0}, dur, "exec") {
		m.Add(res)
	}
	m.Close()
	return loadResult{requests: m.Requests, errors: m.Requests - uint64(math.Round(float64(m.Requests)*m.Success)),
		p50: m.Latencies.P50, p99: m.Latencies.P99, perSecond: m.Throughput, detail: fmt.Sprint(m.StatusCodes)}
}

// engineLoad runs clients goroutines doing engineExec in container, one
// after another, for dur.
func engineLoad(ctx context.Context, c *dockerclient.Client, container string, clients int, dur time.Duration) loadResult {
	var mu sync.Mutex
	var all samples
	var errs uint64
	var firstErr error
	deadline := time.Now().Add(dur)
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			var mine samples
			var failed uint64
			var err1 error
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if err := engineExec(ctx, c, container); err != nil {
					failed++
					err1 = cmp.Or(err1, err)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			all, errs, firstErr = append(all, mine...), errs+failed, cmp.Or(firstErr, err1)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	r := loadResult{requests: uint64(len(all)) + errs, errors: errs, perSecond: float64(len(all)) / elapsed.Seconds()}
	if len(all) > 0 {
		r.p50, r.p99 = all.pct(0.5), all.pct(0.99)
	}
	if firstErr != nil {
		r.detail = "(first: " + firstErr.Error() + ")"
	}
	return r
}

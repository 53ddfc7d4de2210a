package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	containertypes "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	dockerclient "github.com/docker/docker/client"
	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
	"github.com/aetherium/aetherium/internal/testbin"
)

// scaleSubmitters is how many clients create (or delete) at once in the
// scale benchmarks, on both sides.
const scaleSubmitters = 10

// benchCounts reads a comma-separated list of sandbox counts from the
// environment variable env, or returns def.
func benchCounts(b *testing.B, env string, def ...int) []int {
	v := os.Getenv(env)
	if v == "" {
		return def
	}
	var ns []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want a comma-separated list of counts", env, v)
		}
		ns = append(ns, n)
	}
	return ns
}

// fanOut runs do(0..n-1) on scaleSubmitters goroutines and returns the wall
// time until all finished, failing b on the first error.
func fanOut(b *testing.B, n int, do func(i int) error) time.Duration {
	b.Helper()
	return fanOutWidth(b, n, scaleSubmitters, do)
}

// fanOutWidth is fanOut on width goroutines.
func fanOutWidth(b *testing.B, n, width int, do func(i int) error) time.Duration {
	b.Helper()
	next := make(chan int)
	go func() {
		defer close(next)
		for i := range n {
			next <- i
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for range width {
		wg.Go(func() {
			for i := range next {
				if err := do(i); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return took
}

// taskPhases are where sandbox tasks (creates or deletes) spent their time,
// from their tasks' timestamps.
type taskPhases struct {
	mu                         sync.Mutex
	accept, queue, run, notice samples // request answered; task picked up; task ran; client saw it
}

// add records one task's phases: accepted is how long its request took,
// seen when the client saw it finish.
func (ph *taskPhases) add(t *apiv1.Task, accepted time.Duration, seen time.Time) {
	ph.mu.Lock()
	defer ph.mu.Unlock()
	ph.accept = append(ph.accept, accepted)
	if t.StartedAt != nil && t.CompletedAt != nil {
		ph.queue = append(ph.queue, t.StartedAt.Sub(t.CreatedAt))
		ph.run = append(ph.run, t.CompletedAt.Sub(*t.StartedAt))
		ph.notice = append(ph.notice, seen.Sub(*t.CompletedAt))
	}
}

// log prints the phases' p50 and p99, then the worker's own phases.
func (ph *taskPhases) log(b *testing.B, worker []phase) {
	for _, p := range []phase{{"accept (request answered)", ph.accept}, {"queue (created → started)", ph.queue},
		{"run (started → completed)", ph.run}, {"notice (completed → client saw it)", ph.notice}} {
		if len(p.s) > 0 {
			b.Logf("  %-36s p50 %8.2fms p99 %8.2fms", p.name, ms(p.s.pct(0.5)), ms(p.s.pct(0.99)))
		}
	}
	for _, p := range worker {
		b.Logf("  %-36s p50 %8.2fms p99 %8.2fms", "  run: "+p.name, ms(p.s.pct(0.5)), ms(p.s.pct(0.99)))
	}
}

// BenchmarkCreateMany creates N sandboxes with 10 submitters through
// POST /api/v1/vms, each submitter waiting until its sandbox runs before it
// submits the next, and in the same run N raw containers of the same image
// with the same limits through the Docker Engine API (ContainerCreate +
// ContainerStart; rawSpec), 10 at a time, each started before the next. N
// is 50 and 200 (AETHER_BENCH_CREATE_N="50,200" overrides). It reports
// both wall times, their ratio, and where an Aetherium create spent its
// time (accept → queue → run → notice, and inside run the runtime's
// machine vs the agent's handshake). Run with -benchtime 1x.
//
// AETHER_BENCH_RAW_SUBMITTERS sets how many raw creates run at once
// (default 10), to compare with as many as aetherd's queue runs.
// AETHER_BENCH_QUEUE_CONCURRENCY sets aetherd's queue.concurrency (default
// 16, of which vm:create, priority high, may hold 8: queue.Caps), to see
// whether the queue's slots or dockerd limit the creates.
// AETHER_BENCH_INTERLEAVE_DELETES=1 makes the raw fleet before our deletes
// (its creates then run beside our N idle sandboxes) and alternates the two
// sides' deletes (deleteInterleaved), so load that drifts over the minutes
// hits both alike; by default our deletes run first, then the raw creates
// and removes.
func BenchmarkCreateMany(b *testing.B) {
	var args []string
	if c := os.Getenv("AETHER_BENCH_QUEUE_CONCURRENCY"); c != "" {
		args = configArgs(b, "queue:\n  concurrency: "+c+"\n")
	}
	e := newDockerEnv(b, args...)
	docker := newDockerClient(b)
	img := testbin.BaseImage(b)
	rawWidth := scaleSubmitters
	if w := benchCounts(b, "AETHER_BENCH_RAW_SUBMITTERS", scaleSubmitters); len(w) == 1 {
		rawWidth = w[0]
	}
	interleave := os.Getenv("AETHER_BENCH_INTERLEAVE_DELETES") == "1"
	for _, n := range benchCounts(b, "AETHER_BENCH_CREATE_N", 50, 200) {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			for b.Loop() {
				var ph taskPhases
				prefix := "c" + uuid.NewString()[:6]
				cpu0 := cpuSnapshot()
				ours := fanOut(b, n, func(i int) error {
					start := time.Now()
					acc, err := e.c.CreateVM(b.Context(), &client.CreateVMRequest{Name: fmt.Sprintf("%s-%d", prefix, i)})
					if err != nil {
						return err
					}
					accepted := time.Since(start)
					t, err := e.c.WaitTask(b.Context(), acc.TaskID, nil)
					if err != nil || t.Status != store.TaskSucceeded {
						return fmt.Errorf("create %d: %+v %v", i, t, err)
					}
					ph.add(t, accepted, time.Now())
					return nil
				})
				b.StopTimer()
				oursCPU := cpuShare(cpu0, cpuSnapshot(), e.cmd.Process.Pid)
				made := e.logPhases(madeLine, "machine (runtime Create)", "ready (agent handshake)", "store (status writes)")
				var delOurs, delRaw, rawTook time.Duration
				var delPh *taskPhases
				var delOursCPU, delRawCPU, rawCPU map[string]time.Duration
				raw := newRawFleet(b, docker, img, e.netName())
				createRaw := func() {
					cpu0 = cpuSnapshot()
					rawTook = fanOutWidth(b, n, rawWidth, raw.start)
					rawCPU = cpuShare(cpu0, cpuSnapshot(), e.cmd.Process.Pid)
				}
				if interleave {
					createRaw()
					delOurs, delRaw, delPh, delOursCPU, delRawCPU = deleteInterleaved(b, e, raw)
				} else {
					cpu0 = cpuSnapshot()
					delOurs, delPh = deleteAllVMs(b, e)
					delOursCPU = cpuShare(cpu0, cpuSnapshot(), e.cmd.Process.Pid)
					createRaw()
					cpu0 = cpuSnapshot()
					delRaw = raw.removeAll(b)
					delRawCPU = cpuShare(cpu0, cpuSnapshot(), e.cmd.Process.Pid)
				}
				removed := e.logPhases(removedLine, "machine (runtime Delete)", "store (status write)")
				b.StartTimer()

				b.ReportMetric(ours.Seconds(), "aetherium-s")
				b.ReportMetric(rawTook.Seconds(), "engine-s")
				b.ReportMetric(ours.Seconds()/rawTook.Seconds(), "ratio")
				b.Logf("%d creates, %d submitters (raw %d): aetherium %.2fs, Engine API create+start %.2fs, ratio %.3f",
					n, scaleSubmitters, rawWidth, ours.Seconds(), rawTook.Seconds(), ours.Seconds()/rawTook.Seconds())
				ph.log(b, made)
				b.Logf("host CPU:\n%s", cpuTable("create", oursCPU, rawCPU, n))
				b.ReportMetric(delOurs.Seconds()/delRaw.Seconds(), "delete-ratio")
				b.Logf("%d deletes, %d submitters each (interleaved: %v): aetherium %.2fs, Engine API remove-force %.2fs, ratio %.3f",
					n, scaleSubmitters, interleave, delOurs.Seconds(), delRaw.Seconds(), delOurs.Seconds()/delRaw.Seconds())
				delPh.log(b, removed)
				b.Logf("host CPU:\n%s", cpuTable("delete", delOursCPU, delRawCPU, n))
			}
		})
	}
}

// madeLine and removedLine match the worker's "sandbox made" and "sandbox
// removed" log lines' phase durations.
var (
	madeLine    = regexp.MustCompile(`msg="sandbox made".*?machine=(\S+) ready=(\S+) store=(\S+)`)
	removedLine = regexp.MustCompile(`msg="sandbox removed".*?machine=(\S+) store=(\S+)`)
)

// phase is one named set of durations.
type phase struct {
	name string
	s    samples
}

// logPhases reads the durations line's groups match in the worker's log,
// one phase per name in group order, and forgets the log, so the next
// round starts afresh. Nil when no line matched.
func (e *testEnv) logPhases(line *regexp.Regexp, names ...string) []phase {
	text := e.log.Take()
	out := make([]phase, len(names))
	for i, n := range names {
		out[i].name = n
	}
	for _, m := range line.FindAllStringSubmatch(text, -1) {
		for i := range names {
			if d, err := time.ParseDuration(m[i+1]); err == nil {
				out[i].s = append(out[i].s, d)
			}
		}
	}
	if len(out[0].s) == 0 {
		return nil
	}
	return out
}

// netName is the Docker network aetherd's sandboxes join.
func (e *testEnv) netName() string { return "aether-docker" }

// deleteAllVMs deletes every sandbox of e through the API, 10 at a time,
// and waits until each delete finished. It returns the wall time and where
// the deletes spent it.
func deleteAllVMs(b *testing.B, e *testEnv) (time.Duration, *taskPhases) {
	b.Helper()
	vms, err := e.c.ListVMs(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	var ph taskPhases
	return deleteVMs(b, e, vms, &ph), &ph
}

// deleteVMs deletes vms through the API, 10 at a time, each waited for,
// adds their phases to ph and returns the wall time.
func deleteVMs(b *testing.B, e *testEnv, vms []*apiv1.VM, ph *taskPhases) time.Duration {
	b.Helper()
	return fanOut(b, len(vms), func(i int) error {
		start := time.Now()
		acc, err := e.c.DeleteVM(b.Context(), vms[i].ID)
		if err != nil {
			return err
		}
		accepted := time.Since(start)
		t, err := e.c.WaitTask(b.Context(), acc.TaskID, nil)
		if err != nil || t.Status != store.TaskSucceeded {
			return fmt.Errorf("delete %s: %+v %v", vms[i].ID, t, err)
		}
		ph.add(t, accepted, time.Now())
		return nil
	})
}

// deleteChunk is how many deletes deleteInterleaved runs on one side
// before it turns to the other: two waves of 10 in flight.
const deleteChunk = 2 * scaleSubmitters

// deleteInterleaved deletes every sandbox of e through the API (as
// deleteAllVMs) and force-removes every container of raw (as removeAll),
// in alternating chunks of deleteChunk, ours first in even pairs and raw
// first in odd ones (ABBA), each chunk 10 at a time. It returns each
// side's summed wall time, where our deletes spent theirs, and each side's
// host CPU. Back to back, the two halves' ratio at N=50 went from 0.99 to
// 1.38 between two runs minutes apart.
func deleteInterleaved(b *testing.B, e *testEnv, raw *rawFleet) (ours, engine time.Duration, ph *taskPhases, oursCPU, rawCPU map[string]time.Duration) {
	b.Helper()
	vms, err := e.c.ListVMs(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	ids := raw.list(b)
	ph = &taskPhases{}
	oursCPU, rawCPU = map[string]time.Duration{}, map[string]time.Duration{}
	side := func(cpu map[string]time.Duration, total *time.Duration, del func() time.Duration) {
		cpu0 := cpuSnapshot()
		*total += del()
		for who, d := range cpuShare(cpu0, cpuSnapshot(), e.cmd.Process.Pid) {
			cpu[who] += d
		}
	}
	for pair := 0; len(vms) > 0 || len(ids) > 0; pair++ {
		a, c := min(deleteChunk, len(vms)), min(deleteChunk, len(ids))
		oursChunk, rawChunk := vms[:a], ids[:c]
		vms, ids = vms[a:], ids[c:]
		delOurs := func() { side(oursCPU, &ours, func() time.Duration { return deleteVMs(b, e, oursChunk, ph) }) }
		delRaw := func() { side(rawCPU, &engine, func() time.Duration { return raw.remove(b, rawChunk) }) }
		if pair%2 == 0 {
			delOurs()
			delRaw()
		} else {
			delRaw()
			delOurs()
		}
	}
	return ours, engine, ph, oursCPU, rawCPU
}

// rawFleet is the baseline: plain containers made through the Docker
// Engine API with what the docker runtime gives a sandbox (same image,
// memory and swap, CPUs, pids limit, capabilities, no-new-privileges,
// open-files limit, the sandbox network), running `sleep infinity` as
// their process instead of our agent. They carry a label of their own and
// are removed when the benchmark ends, however it ends.
type rawFleet struct {
	docker *dockerclient.Client
	img    string
	net    string
	label  string
	ids    []string
	mu     sync.Mutex
}

func newRawFleet(b *testing.B, docker *dockerclient.Client, img, net string) *rawFleet {
	f := &rawFleet{docker: docker, img: img, net: net, label: "io.aetherium.bench=" + uuid.NewString()[:8]}
	b.Cleanup(func() { f.removeAll(b) })
	return f
}

// rawNofile is the docker runtime's open-files limit: 65536, or less when
// the hard limit (aetherd's, which this process shares) is lower.
func rawNofile() int64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil && rl.Max < 65536 {
		return int64(rl.Max)
	}
	return 65536
}

var rawCaps = []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "NET_BIND_SERVICE"}

func (f *rawFleet) start(i int) error {
	ctx := context.Background()
	pids := int64(4096)
	k, v, _ := strings.Cut(f.label, "=")
	resp, err := f.docker.ContainerCreate(ctx, &containertypes.Config{Image: f.img, Entrypoint: []string{"sleep", "infinity"},
		Cmd: []string{}, WorkingDir: "/", Labels: map[string]string{k: v}},
		&containertypes.HostConfig{NetworkMode: containertypes.NetworkMode(f.net), CapDrop: []string{"ALL"}, CapAdd: rawCaps,
			SecurityOpt: []string{"no-new-privileges"},
			Resources: containertypes.Resources{NanoCPUs: 1e9, Memory: 512 << 20, MemorySwap: 512 << 20, PidsLimit: &pids,
				Ulimits: []*containertypes.Ulimit{{Name: "nofile", Soft: rawNofile(), Hard: rawNofile()}}}},
		nil, nil, "")
	if err != nil {
		return fmt.Errorf("raw create %d: %w", i, err)
	}
	f.mu.Lock()
	f.ids = append(f.ids, resp.ID)
	f.mu.Unlock()
	if err := f.docker.ContainerStart(ctx, resp.ID, containertypes.StartOptions{}); err != nil {
		return fmt.Errorf("raw start %d: %w", i, err)
	}
	return nil
}

// removeAll force-removes every container of the fleet, 10 at a time, and
// returns the wall time.
func (f *rawFleet) removeAll(b *testing.B) time.Duration {
	return f.remove(b, f.list(b))
}

// list returns the ids of the fleet's containers.
func (f *rawFleet) list(b *testing.B) []string {
	cs, err := f.docker.ContainerList(context.Background(), containertypes.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", f.label))})
	if err != nil {
		b.Error(err)
		return nil
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids
}

// remove force-removes the containers ids, 10 at a time, and returns the
// wall time.
func (f *rawFleet) remove(b *testing.B, ids []string) time.Duration {
	ctx := context.Background()
	return fanOut(b, len(ids), func(i int) error {
		err := f.docker.ContainerRemove(ctx, ids[i], containertypes.RemoveOptions{Force: true})
		if err != nil && !errors.Is(err, context.Canceled) && !dockerclient.IsErrNotFound(err) {
			return err
		}
		return nil
	})
}

// BenchmarkDensity is the density run of issue 13: N idle sandboxes (500;
// AETHER_BENCH_DENSITY_N overrides) on one aetherd, created 10 at a time and
// measured once their agents went dormant (or after two minutes), then in the same run N raw containers (rawFleet: same image and limits,
// `sleep infinity` as their process) created and removed the same way. It
// reports host memory per sandbox both ways (MemAvailable's drop, and the
// containers' own cgroups) with the kernel's counters, aetherd's RSS, the
// CPU of aetherd, dockerd and the sandboxes over 60 idle seconds (two
// reconciles),
// GET /api/v1/vms page latency, exec `true` p50 with N sandboxes against
// with 1 (one sandbox before the N and another after they are gone, so the
// minutes between the two counts drift out), and the time to delete all N
// through the API against Engine API
// remove-force of the raw ones (AETHER_BENCH_INTERLEAVE_DELETES=1: the raw
// fleet is made while ours still runs, and the two sides' deletes alternate
// in chunks, as in BenchmarkCreateMany). Everything it makes is removed
// however it ends (newEnv's and rawFleet's cleanups). Run with -benchtime 1x.
func BenchmarkDensity(b *testing.B) {
	n := benchCounts(b, "AETHER_BENCH_DENSITY_N", 500)[0]
	interleave := os.Getenv("AETHER_BENCH_INTERLEAVE_DELETES") == "1"
	e := newDockerEnv(b)
	docker := newDockerClient(b)
	img := testbin.BaseImage(b)
	for b.Loop() {
		mem0, rss0, info0 := memAvailable(b), procRSS(b, e.cmd.Process.Pid), meminfo(b)
		first := e.MustCreateVM(&client.CreateVMRequest{Name: "d-0"})
		exec1 := execSamples(b, e, first.ID, 100)
		progress("density: exec with 1 sandbox p50 %.2fms", ms(exec1.pct(0.5)))
		created := fanOut(b, n-1, func(i int) error {
			acc, err := e.c.CreateVM(b.Context(), &client.CreateVMRequest{Name: fmt.Sprintf("d-%d", i+1)})
			if err != nil {
				return err
			}
			if t, err := e.c.WaitTask(b.Context(), acc.TaskID, nil); err != nil || t.Status != store.TaskSucceeded {
				return fmt.Errorf("create %d: %+v %v", i+1, t, err)
			}
			return nil
		})
		progress("density: %d sandboxes created in %.1fs", n, created.Seconds())
		// Idle sandboxes: aetherd lets go of an agent after docker.agent_idle
		// (30s) unused, and it goes dormant 5 s later.
		asleep, total := waitFleetDormant(b, docker, "io.aetherium.owner="+e.workerID, 2*time.Minute)
		progress("density: %d of %d agents dormant", asleep, total)
		time.Sleep(10 * time.Second) // settle: first-touch page faults, caches
		mem1, rss1, info1 := memAvailable(b), procRSS(b, e.cmd.Process.Pid), meminfo(b)
		ours := cgroupMemory(b, docker, "io.aetherium.owner="+e.workerID)
		progress("density: MemAvailable drop %.2f MiB/sandbox, cgroups %s, aetherd RSS %.1f MiB", float64(mem0-mem1)/float64(n)/(1<<20), ours.per(n), float64(rss1)/(1<<20))
		progress("density: kernel counters per sandbox: %s", info1.less(info0).per(n))
		idle := idleCPU(b, docker, e.cmd.Process.Pid, "io.aetherium.owner="+e.workerID, 60*time.Second)
		cpu := idle.aetherd
		progress("density: idle CPU over 60s, %% of a core: aetherd %.2f, dockerd %.2f, the sandboxes' containers %.2f", idle.aetherd*100, idle.dockerd*100, idle.containers*100)
		pages := listPages(b, e, 50, 200)
		execN := execSamples(b, e, first.ID, 100)
		progress("density: list page p50 %.2fms p99 %.2fms; exec with %d p50 %.2fms", ms(pages.pct(0.5)), ms(pages.pct(0.99)), n, ms(execN.pct(0.5)))
		raw := newRawFleet(b, docker, img, e.netName())
		var mem2, mem3 int64
		var info2, info3 memCounters
		var rawMem cgroupUse
		var rawCreated time.Duration
		makeRaw := func() {
			mem2, info2 = memAvailable(b), meminfo(b)
			rawCreated = fanOut(b, n, raw.start)
			progress("density: %d raw containers created in %.1fs", n, rawCreated.Seconds())
			time.Sleep(10 * time.Second)
			mem3, info3 = memAvailable(b), meminfo(b)
			rawMem = cgroupMemory(b, docker, raw.label)
			progress("density: raw MemAvailable drop %.2f MiB/container, cgroups %s", float64(mem2-mem3)/float64(n)/(1<<20), rawMem.per(n))
			progress("density: raw kernel counters per container: %s", info3.less(info2).per(n))
		}
		e.log.Take() // only the deletes' lines from here
		var delOurs, delRaw time.Duration
		var delPh *taskPhases
		if interleave {
			makeRaw()
			delOurs, delRaw, delPh, _, _ = deleteInterleaved(b, e, raw)
		} else {
			delOurs, delPh = deleteAllVMs(b, e)
		}
		removed := e.logPhases(removedLine, "machine (runtime Delete)", "store (status write)")
		progress("density: deleted all in %.1fs", delOurs.Seconds())
		after := e.MustCreateVM(&client.CreateVMRequest{Name: "d-after"})
		exec1after := execSamples(b, e, after.ID, 100)
		deleteVMs(b, e, []*apiv1.VM{after}, &taskPhases{})
		progress("density: exec with 1 sandbox again p50 %.2fms", ms(exec1after.pct(0.5)))
		exec1before := exec1
		exec1 = append(slices.Clone(exec1before), exec1after...)
		if !interleave {
			makeRaw()
			delRaw = raw.removeAll(b)
		}

		perOurs, perRaw := float64(mem0-mem1)/float64(n)/(1<<20), float64(mem2-mem3)/float64(n)/(1<<20)
		b.ReportMetric(perOurs, "MiB/sandbox")
		b.ReportMetric(perRaw, "raw-MiB/container")
		b.ReportMetric(float64(rss1)/(1<<20), "aetherd-RSS-MiB")
		b.ReportMetric(cpu*100, "aetherd-idle-%core")
		b.ReportMetric(ms(pages.pct(0.99)), "list-page-p99-ms")
		b.ReportMetric(ms(execN.pct(0.5))/ms(exec1.pct(0.5)), "exec-p50-N/1")
		b.ReportMetric(delOurs.Seconds()/delRaw.Seconds(), "delete-ratio")
		b.Logf("%d sandboxes vs %d raw containers (10 submitters each):", n, n)
		b.Logf("  create all: aetherium %.1fs, Engine API %.1fs", created.Seconds(), rawCreated.Seconds())
		b.Logf("  host memory (MemAvailable drop) per sandbox: aetherium %.2f MiB, raw %.2f MiB, ratio %.3f (%d of %d agents dormant)", perOurs, perRaw, perOurs/perRaw, asleep, total)
		b.Logf("  container cgroups per sandbox: aetherium %s | raw %s", ours.per(n), rawMem.per(n))
		b.Logf("  /proc/meminfo growth per sandbox: aetherium %s | raw %s", info1.less(info0).per(n), info3.less(info2).per(n))
		b.Logf("  aetherd RSS %.1f MiB (%.1f MiB before; %.1f KiB per sandbox)",
			float64(rss1)/(1<<20), float64(rss0)/(1<<20), float64(rss1-rss0)/float64(n)/1024)
		b.Logf("  idle CPU over 60s, %% of a core: aetherd %.2f, dockerd %.2f, the sandboxes' containers (agents) %.2f",
			idle.aetherd*100, idle.dockerd*100, idle.containers*100)
		b.Logf("  GET /api/v1/vms?limit=50 pages (n=%d): p50 %.2fms p99 %.2fms", len(pages), ms(pages.pct(0.5)), ms(pages.pct(0.99)))
		b.Logf("  exec true: with 1 sandbox p50 %.2fms p99 %.2fms (before the %d %.2fms, after %.2fms); with %d p50 %.2fms p99 %.2fms",
			ms(exec1.pct(0.5)), ms(exec1.pct(0.99)), n, ms(exec1before.pct(0.5)), ms(exec1after.pct(0.5)), n, ms(execN.pct(0.5)), ms(execN.pct(0.99)))
		b.Logf("  delete all (interleaved: %v): aetherium %.1fs, Engine API remove-force %.1fs, ratio %.3f",
			interleave, delOurs.Seconds(), delRaw.Seconds(), delOurs.Seconds()/delRaw.Seconds())
		delPh.log(b, removed)
	}
}

// progress prints a step's result at once (a benchmark's own log shows
// only when it ends, and the density run takes many minutes).
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().UTC().Format("15:04:05 ")+format+"\n", args...)
}

// memAvailable is the host's MemAvailable in bytes.
func memAvailable(b *testing.B) int64 {
	return procField(b, "/proc/meminfo", "MemAvailable:") << 10
}

// procRSS is a process's resident set in bytes.
func procRSS(b *testing.B, pid int) int64 {
	return procField(b, fmt.Sprintf("/proc/%d/status", pid), "VmRSS:") << 10
}

// procField reads the number after key (in kB) from a /proc file.
func procField(b *testing.B, path, key string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			v, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return v
		}
	}
	b.Fatalf("%s: no %s", path, key)
	return 0
}

// idleShare is what aetherd, dockerd and the sandboxes' containers used of
// a core over the same idle window.
type idleShare struct{ aetherd, dockerd, containers float64 }

// idleCPU measures aetherd (pid), dockerd and the containers carrying label
// (their cpuacct cgroups, v1 cgroupfs; zero elsewhere) over d.
func idleCPU(b *testing.B, docker *dockerclient.Client, pid int, label string, d time.Duration) idleShare {
	cs, err := docker.ContainerList(b.Context(), containertypes.ListOptions{Filters: filters.NewArgs(filters.Arg("label", label))})
	if err != nil {
		b.Fatal(err)
	}
	containersNS := func() (sum int64) {
		for _, c := range cs {
			v, _ := os.ReadFile("/sys/fs/cgroup/cpuacct/docker/" + c.ID + "/cpuacct.usage")
			n, _ := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
			sum += n
		}
		return sum
	}
	snap0, c0, start := cpuSnapshot(), containersNS(), time.Now()
	time.Sleep(d)
	share, c1, secs := cpuShare(snap0, cpuSnapshot(), pid), containersNS(), time.Since(start).Seconds()
	return idleShare{
		aetherd:    (share["aetherd"] + share["aetherd's children (nft)"]).Seconds() / secs,
		dockerd:    share["dockerd (host-wide)"].Seconds() / secs,
		containers: float64(c1-c0) / 1e9 / secs,
	}
}

// kernelCounters are the /proc/meminfo fields (kB) that say where a
// container's memory beyond its processes' lives.
var kernelCounters = []string{"AnonPages", "Shmem", "Slab", "SUnreclaim", "KernelStack", "PageTables", "Percpu"}

// memCounters holds kernelCounters' values, in kernelCounters' order.
type memCounters []int64

// meminfo reads kernelCounters now.
func meminfo(b *testing.B) memCounters {
	m := make(memCounters, len(kernelCounters))
	for i, k := range kernelCounters {
		m[i] = procField(b, "/proc/meminfo", k+":")
	}
	return m
}

func (m memCounters) less(o memCounters) memCounters {
	d := make(memCounters, len(m))
	for i := range m {
		d[i] = m[i] - o[i]
	}
	return d
}

// per formats the counters divided by n, in KiB.
func (m memCounters) per(n int) string {
	var parts []string
	for i, k := range kernelCounters {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, float64(m[i])/float64(n)))
	}
	return strings.Join(parts, ", ") + " KiB"
}

// cgroupUse sums the memory cgroups (v1, cgroupfs driver) of containers.
type cgroupUse struct{ usage, rss, cache int64 }

func (c cgroupUse) per(n int) string {
	mib := func(v int64) float64 { return float64(v) / float64(n) / (1 << 20) }
	return fmt.Sprintf("usage %.2f MiB (rss %.2f, cache %.2f)", mib(c.usage), mib(c.rss), mib(c.cache))
}

// cgroupMemory sums the memory cgroups of the containers carrying label
// (key=value); zero when the host's cgroups are not v1 cgroupfs.
func cgroupMemory(b *testing.B, docker *dockerclient.Client, label string) cgroupUse {
	cs, err := docker.ContainerList(b.Context(), containertypes.ListOptions{Filters: filters.NewArgs(filters.Arg("label", label))})
	if err != nil {
		b.Fatal(err)
	}
	var sum cgroupUse
	for _, c := range cs {
		dir := "/sys/fs/cgroup/memory/docker/" + c.ID
		if v, err := os.ReadFile(dir + "/memory.usage_in_bytes"); err == nil {
			n, _ := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
			sum.usage += n
		}
		stat, err := os.ReadFile(dir + "/memory.stat")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(stat), "\n") {
			k, v, _ := strings.Cut(line, " ")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "total_rss":
				sum.rss += n
			case "total_cache":
				sum.cache += n
			}
		}
	}
	return sum
}

// execSamples runs `true` n times in vm through the API's exec.
func execSamples(b *testing.B, e *testEnv, vm string, n int) samples {
	var s samples
	for range n {
		start := time.Now()
		res, err := e.c.Exec(b.Context(), vm, &task.ExecParams{Command: "true", Args: []string{}}, nil, nil, nil)
		if err != nil || *res.ExitCode != 0 {
			b.Fatalf("exec: %+v %v", res, err)
		}
		s = append(s, time.Since(start))
	}
	return s
}

// listPages walks GET /api/v1/vms in pages of limit until it has timed
// count page requests, starting over at the end.
func listPages(b *testing.B, e *testEnv, limit, count int) samples {
	var s samples
	cursor := ""
	for len(s) < count {
		start := time.Now()
		resp, err := e.http().Get("http://" + e.addr + "/api/v1/vms?limit=" + strconv.Itoa(limit) + "&cursor=" + cursor)
		if err != nil {
			b.Fatal(err)
		}
		var page apiv1.VMList
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("list: %d %v", resp.StatusCode, err)
		}
		s = append(s, time.Since(start))
		cursor = page.Next
	}
	return s
}

package e2e_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// forkBomb and memoryHog are the attacks, each ended by its exec timeout
// (TestMemoryHogContained runs a bounded hog of its own).
const (
	forkBomb  = `bomb() { bomb | bomb & }; bomb; sleep 300`
	memoryHog = `while true; do head -c 400m /dev/zero | tail > /dev/null; done`
)

// TestForkBombContained guards issue 10: a fork bomb in a Docker sandbox
// stops at its workload's pids limit (read from the host's cgroups), aetherd
// keeps answering and another sandbox keeps working meanwhile, the bombed
// exec returns as timed out, and the bombed sandbox itself recovers: its
// agent, which has pids of its own, killed the bomb at the timeout. Then
// deleting it leaves no container and no cgroup.
//
// Before the workload had its own pids group, the bomb took every pid of
// the container, the agent (PID 1) could not make a thread, the exec came
// back "agent broken" and the sandbox was lost (and dockerd's kill lost to
// the bomb, so even the delete failed).
//
// The sandbox's pids limit is 1024 here (4096 by default), so that on a
// loaded CI host the bomb reaches it within seconds, and before the memory
// cgroup would kill it.
func TestForkBombContained(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/sys/fs/cgroup/pids/tasks"); err != nil {
		t.Skip("skipping: no cgroup v1 pids hierarchy; on cgroup v2 the agent shares the container's pids limit (ARCHITECTURE, \"What a guest can make the host use\")")
	}
	e := newEnv(t)
	e.proc = e.add("--runtime", "docker", "--config", writeConfig(t, "docker:\n  pids_limit: 1024\n"))
	e.connect(e.proc)
	e.start()
	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "bomb", VCPUs: 1, MemoryMB: 512})
	e.MustCreateVM(&client.CreateVMRequest{Name: "bystander", VCPUs: 1, MemoryMB: 256})
	id, err := exec.Command("docker", "inspect", "-f", "{{.Id}}", "aether-"+vm.ID).Output()
	if err != nil {
		t.Fatal(err)
	}
	container := pidsCgroup(strings.TrimSpace(string(id)))
	workload := workloadCgroup(vm.ID)
	t.Cleanup(func() { killCgroup(workload); killCgroup(container) })
	res, done := execAsync(e, "bomb", forkBomb, 30)
	// The bomb is held once a fork failed at the limit (pids.events); on a
	// loaded host it takes a while to get there.
	limit, agentLimit := readInt(t, workload+"/pids.max"), readInt(t, container+"/pids.max")
	peak, agentPeak, held := 0, 0, false
	for end := time.Now().Add(27 * time.Second); !held && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		peak = max(peak, readInt(t, workload+"/pids.current"))
		agentPeak = max(agentPeak, readInt(t, container+"/pids.current"))
		held = readEvent(t, workload+"/pids.events", "max") > 0
	}
	t.Logf("fork bomb: %d processes at peak (pids.max %d, held there: %v); the agent's cgroup: %d (pids.max %d)", peak, limit, held, agentPeak, agentLimit)
	if limit <= 0 || limit+agentLimit != 1024 || peak > limit || !held {
		t.Errorf("workload pids: peak %d, max %d, a fork refused at the max: %v (agent's max %d); want the bomb held at a limit that, with the agent's, is 1024",
			peak, limit, held, agentLimit)
	}
	if agentPeak >= agentLimit {
		t.Errorf("the agent's cgroup is full (%d of %d): the bomb is in it", agentPeak, agentLimit)
	}
	hctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.c.Health(hctx); err != nil {
		t.Errorf("aetherd during the fork bomb: %v", err)
	}
	if out, code := e.MustExec("bystander", "echo unaffected"); out != "unaffected\n" || code != 0 {
		t.Errorf("another sandbox during the fork bomb: %q, exit %d", out, code)
	}
	select {
	case err := <-done:
		if err != nil || !res.TimedOut {
			t.Errorf("the fork bomb's exec: %+v, %v; want it timed out", res, err)
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("the fork bomb's exec did not return within 90s")
	}
	if out, code := e.MustExec("bomb", "echo recovered"); out != "recovered\n" || code != 0 {
		t.Errorf("the bombed sandbox after its exec timed out: %q, exit %d", out, code)
	}
	acc, err := e.c.DeleteVM(ctx(t), "bomb")
	if err != nil {
		t.Fatal(err)
	}
	if tk := e.mustWait(acc.TaskID); tk.Status != store.TaskSucceeded {
		t.Errorf("delete of the bombed sandbox: %s %q", tk.Status, tk.Error)
	}
	if out, _ := exec.Command("docker", "ps", "-aq", "--filter", "name=aether-"+vm.ID).Output(); len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("container of the deleted sandbox still exists")
	}
	if _, err := os.Stat(workload); !os.IsNotExist(err) {
		t.Errorf("workload cgroup %s of the deleted sandbox: %v, want it gone", workload, err)
	}
}

// TestMemoryHogContained guards issue 10: a workload that allocates past
// its sandbox's memory is OOM-killed inside the sandbox's memory cgroup,
// three times over, not the agent: aetherd and another sandbox keep
// answering meanwhile, the exec reports each kill and returns, and the
// sandbox is usable afterwards.
//
// The hog is bounded (three allocations, each OOM-killed), not a loop ended
// by a timeout: how long the kernel takes to reach and declare an OOM
// depends on the host (a loaded host thrashes the cgroup's file pages for
// a long while first), so the test waits for the kills, with a failure
// bound only, instead of expecting one within a fixed time.
func TestMemoryHogContained(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "hog", VCPUs: 1, MemoryMB: 128})
	e.MustCreateVM(&client.CreateVMRequest{Name: "bystander", VCPUs: 1, MemoryMB: 128})
	id, err := exec.Command("docker", "inspect", "-f", "{{.Id}}", "aether-"+vm.ID).Output()
	if err != nil {
		t.Fatal(err)
	}
	oom := oomControl(t, strings.TrimSpace(string(id)))
	const hog = `k=0; for i in 1 2 3; do head -c 400m /dev/zero | tail > /dev/null || k=$((k+1)); done; echo "killed $k"`
	var out strings.Builder
	done := make(chan error, 1)
	res := &apiv1.ExecExit{}
	go func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // failure bound only
		defer cancel()
		r, err := e.c.Exec(c, "hog", &task.ExecParams{Command: hog, TimeoutSeconds: 240}, nil, &out, io.Discard)
		if r != nil {
			*res = *r
		}
		done <- err
	}()
	for kills := 0; kills == 0; time.Sleep(100 * time.Millisecond) {
		if kills = readEvent(t, oom, "oom_kill"); kills == 0 && len(done) > 0 {
			t.Fatalf("the hog's exec ended with no OOM kill in its memory cgroup (%s): the hog was not held by it", oom)
		}
	}
	if _, err := e.c.Health(ctx(t)); err != nil {
		t.Errorf("aetherd during the memory hog: %v", err)
	}
	if out, code := e.MustExec("bystander", "echo unaffected"); out != "unaffected\n" || code != 0 {
		t.Errorf("another sandbox during the memory hog: %q, exit %d", out, code)
	}
	if err := <-done; err != nil || res.TimedOut || res.ExitCode == nil || *res.ExitCode != 0 || out.String() != "killed 3\n" {
		t.Errorf("the memory hog's exec: %+v, %v, output %q; want each of its 3 allocations killed and the exec ended", res, err, out.String())
	}
	if kills := readEvent(t, oom, "oom_kill"); kills < 3 {
		t.Errorf("%d OOM kills in the sandbox's memory cgroup; want at least 3", kills)
	}
	if out, code := e.MustExec("hog", "echo recovered"); out != "recovered\n" || code != 0 {
		t.Errorf("the hog's sandbox afterwards: %q, exit %d", out, code)
	}
}

// execAsync runs command in a sandbox with a timeout; *res is set before
// done receives the error.
func execAsync(e *testEnv, vm, command string, timeoutS int) (*apiv1.ExecExit, <-chan error) {
	res := &apiv1.ExecExit{}
	done := make(chan error, 1)
	go func() {
		c, cancel := context.WithTimeout(context.Background(), time.Duration(timeoutS+60)*time.Second)
		defer cancel()
		r, err := e.c.Exec(c, vm, &task.ExecParams{Command: command, TimeoutSeconds: timeoutS}, nil, io.Discard, io.Discard)
		if r != nil {
			*res = *r
		}
		done <- err
	}()
	return res, done
}

// oomControl is the file that counts a container's OOM kills (v1
// memory.oom_control, v2 memory.events).
func oomControl(t *testing.T, id string) string {
	for _, f := range []string{"/sys/fs/cgroup/memory/docker/" + id + "/memory.oom_control",
		"/sys/fs/cgroup/system.slice/docker-" + id + ".scope/memory.events", "/sys/fs/cgroup/docker/" + id + "/memory.events"} {
		if _, err := os.Stat(f); err == nil {
			return f
		}
	}
	t.Fatalf("no memory cgroup found for container %s", id)
	return ""
}

// readEvent reads the counter key of a cgroup "key value" file.
func readEvent(t *testing.T, path, key string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// pidsCgroup is the host's pids cgroup directory of a container (cgroup v1
// with cgroupfs, or v2 with either driver).
func pidsCgroup(id string) string {
	for _, d := range []string{"/sys/fs/cgroup/pids/docker/" + id, "/sys/fs/cgroup/system.slice/docker-" + id + ".scope",
		"/sys/fs/cgroup/docker/" + id} {
		if _, err := os.Stat(d + "/pids.current"); err == nil {
			return d
		}
	}
	return "/nonexistent"
}

// workloadCgroup is the pids group aetherd makes for a sandbox's workload
// on a cgroup v1 host (sandbox/docker cgroup.go).
func workloadCgroup(sandboxID string) string {
	return "/sys/fs/cgroup/pids/aetherium/" + sandboxID
}

// killCgroup SIGKILLs every process of a cgroup until none is left (or 30s
// pass): what it takes to end a fork bomb that dockerd's kill cannot (a
// cleanup for when the test fails).
func killCgroup(dir string) {
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); {
		b, err := os.ReadFile(dir + "/cgroup.procs")
		if err != nil || len(strings.TrimSpace(string(b))) == 0 {
			return
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

func readInt(t *testing.T, path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// BenchmarkHealthUnderAttack measures GET /health latency (p50, p99) while
// one sandbox runs nothing, a fork bomb, or a memory hog that the cgroup
// OOM-kills over and over (128 MiB sandbox). Reported in BENCHMARKS.md; no
// assertion on the numbers.
func BenchmarkHealthUnderAttack(b *testing.B) {
	e := newDockerEnv(b)
	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "attacker", VCPUs: 1, MemoryMB: 128})
	if id, err := exec.Command("docker", "inspect", "-f", "{{.Id}}", "aether-"+vm.ID).Output(); err == nil {
		cg, workload := pidsCgroup(strings.TrimSpace(string(id))), workloadCgroup(vm.ID)
		b.Cleanup(func() { killCgroup(workload); killCgroup(cg) }) // a bomb on a cgroup v2 host outlives dockerd's kill
	}
	// The fork bomb last: on a cgroup v2 host it leaves the sandbox's agent starved.
	for _, phase := range []struct{ name, cmd string }{{"idle", ""}, {"memory-hog", memoryHog}, {"fork-bomb", forkBomb}} {
		b.Run(phase.name, func(b *testing.B) {
			done := make(chan struct{})
			if phase.cmd != "" {
				go func() {
					defer close(done)
					actx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
					defer cancel()
					e.c.Exec(actx, "attacker", &task.ExecParams{Command: phase.cmd, TimeoutSeconds: 12}, nil, io.Discard, io.Discard)
				}()
				time.Sleep(2 * time.Second) // the attack is under way
			} else {
				close(done)
			}
			var lat samples
			for end := time.Now().Add(8 * time.Second); time.Now().Before(end); {
				start := time.Now()
				if _, err := e.c.Health(context.Background()); err != nil {
					b.Errorf("health: %v", err)
				}
				lat = append(lat, time.Since(start))
				time.Sleep(5 * time.Millisecond)
			}
			<-done
			b.ReportMetric(ms(lat.pct(0.5)), "p50-ms")
			b.ReportMetric(ms(lat.pct(0.99)), "p99-ms")
			b.ReportMetric(ms(lat.pct(1)), "max-ms")
			b.Logf("%s: /health p50 %.2fms p99 %.2fms max %.2fms (n=%d)", phase.name, ms(lat.pct(0.5)), ms(lat.pct(0.99)), ms(lat.pct(1)), len(lat))
			b.N = 1
		})
	}
}

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

	"github.com/aetherium/aetherium/internal/client"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// forkBomb and memoryHog are the attacks, each ended by its exec timeout.
const (
	forkBomb  = `bomb() { bomb | bomb & }; bomb; sleep 30`
	memoryHog = `while true; do head -c 400m /dev/zero | tail > /dev/null; done`
)

// TestForkBombContained guards issue 10: a fork bomb in a Docker sandbox
// stops at the sandbox's pids limit (read from the host's cgroup), aetherd
// keeps answering and another sandbox keeps working meanwhile, calls on the
// bombed sandbox return within their deadlines, and deleting it frees
// everything.
//
// Known gap, so the test runs only with AETHER_TEST_FORKBOMB=1: the agent
// shares the pids cgroup with the workload, so a bomb that holds every pid
// starves it (it cannot kill the bomb at the timeout; calls then report the
// agent broken or unreachable), and dockerd's kill does not win against the
// bomb either ("did not receive an exit event"): the delete fails (the
// sandbox ends failed, not deleting) and the container stays until its
// processes are killed in a loop (killCgroup).
func TestForkBombContained(t *testing.T) {
	t.Parallel()
	if os.Getenv("AETHER_TEST_FORKBOMB") != "1" {
		t.Skip("known gap (see the doc comment); set AETHER_TEST_FORKBOMB=1 to run")
	}
	e := newDockerEnv(t)
	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "bomb", VCPUs: 1, MemoryMB: 256})
	e.MustCreateVM(&client.CreateVMRequest{Name: "bystander", VCPUs: 1, MemoryMB: 256})
	id, err := exec.Command("docker", "inspect", "-f", "{{.Id}}", "aether-"+vm.ID).Output()
	if err != nil {
		t.Fatal(err)
	}
	cg := pidsCgroup(strings.TrimSpace(string(id)))
	t.Cleanup(func() { killCgroup(cg) })
	done := make(chan error, 1)
	go func() {
		bctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_, err := e.c.Exec(bctx, "bomb", &task.ExecParams{Command: forkBomb, TimeoutSeconds: 5}, nil, io.Discard, io.Discard)
		done <- err
	}()
	limit := readInt(t, cg+"/pids.max")
	peak := 0
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		peak = max(peak, readInt(t, cg+"/pids.current"))
	}
	t.Logf("fork bomb: %d processes at peak, pids.max %d", peak, limit)
	if limit <= 0 || limit > 4096 || peak > limit {
		t.Errorf("pids: peak %d, max %d; want a limit <= 4096 that holds", peak, limit)
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
		t.Logf("fork bomb exec returned: %v", err)
	case <-time.After(90 * time.Second):
		t.Errorf("the fork bomb's exec did not return within 90s")
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

// killCgroup SIGKILLs every process of a cgroup until none is left (or 30s
// pass): what it takes to end a fork bomb that dockerd's kill cannot.
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
		cg := pidsCgroup(strings.TrimSpace(string(id)))
		b.Cleanup(func() { killCgroup(cg) }) // the fork bomb outlives dockerd's kill
	}
	// The fork bomb last: it leaves the sandbox's agent starved.
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

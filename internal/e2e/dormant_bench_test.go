package e2e_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	containertypes "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	dockerclient "github.com/docker/docker/client"

	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/task"
)

// BenchmarkExecAfterDormancy is what dormancy costs the next command: `true`
// through POST /exec in a sandbox whose agent went dormant (aetherd closed
// its unused connection after docker.agent_idle, 200ms here, and the agent
// swapped itself for aether-waiter 5 s later), so the exec waits for the
// agent's start, handshake and adoption; then one more exec (awake); and,
// in the same iterations, the Docker Engine API exec of `true` in the same
// container (which does not wake the agent). Run with -benchtime 20x; each
// iteration waits for dormancy (≈ 5 s).
func BenchmarkExecAfterDormancy(b *testing.B) {
	e := newDockerEnv(b, configArgs(b, "docker:\n  agent_idle: 200ms\n")...)
	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "dormant"})
	container := "aether-" + vm.ID
	docker := newDockerClient(b)
	in, err := docker.ContainerInspect(b.Context(), container)
	if err != nil {
		b.Fatal(err)
	}
	exec := func() time.Duration {
		start := time.Now()
		res, err := e.c.Exec(b.Context(), vm.ID, &task.ExecParams{Command: "true", Shell: new(false)}, nil, nil, nil)
		if err != nil || *res.ExitCode != 0 {
			b.Fatalf("exec: %+v %v", res, err)
		}
		return time.Since(start)
	}
	var woken, awake, raw samples
	for i := 0; i < b.N; i++ {
		waitDormant(b, in.State.Pid, time.Minute)
		woken = append(woken, exec())
		awake = append(awake, exec())
		start := time.Now()
		if err := engineExec(b.Context(), docker, container); err != nil {
			b.Fatal(err)
		}
		raw = append(raw, time.Since(start))
	}
	report(b, "first exec true after dormancy vs Docker Engine API exec", woken, raw)
	b.ReportMetric(ms(awake.pct(0.5)), "awake-p50-ms")
	b.Logf("the exec right after (agent awake): p50 %.2fms p99 %.2fms", ms(awake.pct(0.5)), ms(awake.pct(0.99)))
}

// dormant reports whether host process pid (a sandbox's PID 1) runs
// aether-waiter: its agent is dormant.
func dormant(pid int) bool {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	return err == nil && filepath.Base(exe) == "aether-waiter"
}

func waitDormant(tb testing.TB, pid int, limit time.Duration) {
	tb.Helper()
	for deadline := time.Now().Add(limit); !dormant(pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("host pid %d not dormant after %v", pid, limit)
		}
	}
}

// waitFleetDormant waits, up to limit, until every running container
// carrying label has a dormant agent, and returns how many have and of how
// many.
func waitFleetDormant(b *testing.B, docker *dockerclient.Client, label string, limit time.Duration) (asleep, total int) {
	cs, err := docker.ContainerList(b.Context(), containertypes.ListOptions{Filters: filters.NewArgs(filters.Arg("label", label))})
	if err != nil {
		b.Fatal(err)
	}
	var pids []int
	for _, c := range cs {
		in, err := docker.ContainerInspect(b.Context(), c.ID)
		if err != nil {
			b.Fatal(err)
		}
		pids = append(pids, in.State.Pid)
	}
	for deadline := time.Now().Add(limit); ; time.Sleep(time.Second) {
		asleep = 0
		for _, pid := range pids {
			if dormant(pid) {
				asleep++
			}
		}
		if asleep == len(pids) || time.Now().After(deadline) {
			return asleep, len(pids)
		}
	}
}

package e2e_test

import (
	"testing"
	"time"

	"github.com/aetherium/aetherium/client"
)

// TestExecAfterDormancy: with docker.agent_idle set, aetherd lets go of an
// unused sandbox's agent, the agent goes dormant (PID 1 runs aether-waiter),
// and the next exec through the API wakes it and runs, with its files and
// history intact.
func TestExecAfterDormancy(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t, "--config", writeConfig(t, "docker:\n  agent_idle: 200ms\n"))
	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "sleepy"})
	if out, code := e.MustExec("sleepy", "echo kept > /root/f"); out != "" || code != 0 {
		t.Fatalf("exec: %q %d", out, code)
	}
	in, err := newDockerClient(t).ContainerInspect(ctx(t), "aether-"+vm.ID)
	if err != nil {
		t.Fatal(err)
	}
	waitDormant(t, in.State.Pid, 20*time.Second) // 0.2 s + the agent's 5 s; the default idle would take 35
	if out, code := e.MustExec("sleepy", "cat /root/f; cat /proc/1/comm"); out != "kept\naether-agent\n" || code != 0 {
		t.Errorf("exec after dormancy: %q %d; want the file and the agent back as PID 1", out, code)
	}
	hist, err := e.c.Executions(ctx(t), vm.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 {
		t.Errorf("execution history after dormancy: %d rows; want 2", len(hist))
	}
}

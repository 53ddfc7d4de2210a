package docker_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/sandbox/docker"
	"github.com/aetherium/aetherium/internal/testbin"
)

// TestDormantAgent: once aetherd let go of an idle sandbox's agent, PID 1
// becomes aether-waiter (one thread; the same process, so the same pid),
// which reaps orphans; the next operation starts the agent again, adopted
// again into the workload group; a stop ends the waiter at once; and a
// tracked process keeps the agent awake.
func TestDormantAgent(t *testing.T) {
	t.Parallel()
	img := testbin.BaseImage(t)
	ctx := context.Background()
	rt, err := docker.New(docker.Config{AgentPath: testbin.Build(t, "aether-agent"), StateDir: filepath.Join(t.TempDir(), "sandboxes"),
		Owner: "test-" + uuid.NewString()[:8], Network: "none", AgentIdle: 300 * time.Millisecond, AgentDormantAfter: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	testbin.Need(t, "dockerd", rt.Health(ctx))
	agents := sandbox.NewAgents(rt)
	defer agents.Close()
	spec := &sandbox.Spec{ID: uuid.NewString(), Image: img}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := exec.Command("docker", "logs", "aether-"+spec.ID).CombinedOutput()
			t.Logf("the sandbox's log (its agents and waiters):\n%s", logs)
		}
		rt.Delete(ctx, spec.ID)
	})
	if _, err := rt.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	pid, err := rt.AgentPID(ctx, spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	run := func(script string) string {
		t.Helper()
		c, err := agents.Get(ctx, spec.ID)
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		if exit, err := c.Exec(ctx, &agentproto.ExecRequest{Argv: []string{"sh", "-c", script}}, agentclient.ExecIO{Stdout: &out, Stderr: &out}); err != nil || exit.ExitCode != 0 {
			t.Fatalf("%s: %v %v: %s", script, exit, err, out.String())
		}
		return out.String()
	}
	// A command's signal mask and ignored signals come from the agent:
	// the same before and after a round through the waiter.
	const sigs = "grep -E '^Sig(Blk|Ign)' /proc/self/status"
	sigsBefore := run(sigs)
	// PID 1 is closed to the workload, which has its uid and capabilities.
	const closed = "grep ^Gid: /proc/1/status; cat /proc/1/environ >/dev/null 2>&1 && echo readable || echo closed"
	if got := run(closed); got != "Gid:\t0\t0\t0\t0\nclosed\n" {
		t.Errorf("PID 1 to the workload: %q; want gids 0 and /proc/1 closed", got)
	}
	// An orphan in a session of its own outlives its exec and ends while
	// the agent is dormant.
	run("setsid sleep 2 </dev/null >/dev/null 2>&1 &")
	waitProgram(t, pid, "aether-waiter")
	if n := threads(t, pid); n != 1 {
		t.Errorf("the dormant sandbox's PID 1 has %d threads; want 1", n)
	}
	waitNoChildren(t, pid)

	if got := run("echo awake; grep :pids: /proc/self/cgroup; grep :pids: /proc/1/cgroup"); !strings.HasPrefix(got, "awake\n") {
		t.Errorf("exec after dormancy: %q", got)
	} else if hostPidsV1() {
		lines := strings.Split(strings.TrimSpace(got), "\n")
		if len(lines) != 3 || !strings.HasSuffix(lines[1], ":pids:/aetherium/"+spec.ID) || strings.Contains(lines[2], "aetherium") {
			t.Errorf("after dormancy: %q; want the command in pids:/aetherium/%s, the agent not", lines, spec.ID)
		}
	}
	if got := program(t, pid); got != "aether-agent" {
		t.Errorf("PID 1 after an exec: %s; want aether-agent", got)
	}
	// PID 1 woke non-dumpable, with the real gid its exec borrowed (so
	// that it never was dumpable) given back.
	if got := run(closed); got != "Gid:\t0\t0\t0\t0\nclosed\n" {
		t.Errorf("PID 1 to the workload after dormancy: %q; want gids 0 and /proc/1 closed", got)
	}
	if got := run(sigs); got != sigsBefore {
		t.Errorf("a command's signals after dormancy:\n%s\nbefore:\n%s", got, sigsBefore)
	}
	// The descriptors the waiter passed on are the agent's alone.
	if got := run("ls /proc/self/fd | tr '\\n' ' '"); got != "0 1 2 3 " {
		t.Errorf("a command's descriptors after dormancy: %q; want 0 1 2 and ls's own 3", got)
	}
	if again, err := rt.AgentPID(ctx, spec.ID); err != nil || again != pid {
		t.Errorf("the agent's pid after dormancy: %d, %v; want the same process, %d", again, err, pid)
	}

	// Dormant again, a stop's SIGTERM ends the waiter (exit 0) rather than
	// Docker's kill after the grace (137).
	waitProgram(t, pid, "aether-waiter")
	if err := rt.Stop(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if code, err := rt.ExitCode(ctx, spec.ID); err != nil || code != 0 {
		t.Errorf("dormant sandbox stopped: exit code %d, %v; want 0 (the waiter ended on SIGTERM)", code, err)
	}
	if err := rt.Start(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	agents.Forget(spec.ID)

	// A tracked process keeps the agent: its output lives only there.
	c, err := agents.Get(ctx, spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if pid, err = rt.AgentPID(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartBackground(ctx, &agentproto.ExecRequest{Argv: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // ≈ 4 times what going dormant takes
	if got := program(t, pid); got != "aether-agent" {
		t.Errorf("PID 1 with a tracked process, 2 s idle: %s; want the agent still", got)
	}
}

// program is the name of the binary process pid runs. While the process
// execs from a thread other than its main one (the agent's going dormant),
// /proc briefly has no executable for it: then "(exec under way?)".
func program(t *testing.T, pid int) string {
	t.Helper()
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return fmt.Sprintf("(exec under way? %v)", err)
	}
	return filepath.Base(exe)
}

func waitProgram(t *testing.T, pid int, want string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); program(t, pid) != want; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("PID 1 (host pid %d) runs %s after 15 s; want %s", pid, program(t, pid), want)
		}
	}
}

func threads(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// waitNoChildren waits until process pid has no children, running or
// zombie: its orphans ended and it reaped them.
func waitNoChildren(t *testing.T, pid int) {
	t.Helper()
	var kids string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
		if err != nil {
			t.Fatal(err)
		}
		if kids = strings.TrimSpace(string(b)); kids == "" {
			return
		}
	}
	t.Fatalf("host pid %d still has children %s after 15 s (zombies not reaped?)", pid, kids)
}

// TestAdoptAgentChecksPeer: every connection's peer must be the sandbox's
// PID 1, whatever the agent reports: a root workload can put a socket of
// its own at the agent's path and relay the host's connections (which are
// frequent, idle ones being closed), answering with no forking thread.
func TestAdoptAgentChecksPeer(t *testing.T) {
	t.Parallel()
	img := testbin.BaseImage(t)
	ctx := context.Background()
	rt := newRuntime(t, "none")
	spec := &sandbox.Spec{Image: img}
	startSandbox(t, rt, spec)
	real, err := rt.Dial(ctx, spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	if err := rt.AdoptAgent(ctx, spec.ID, real, agentproto.Hello{}); err != nil {
		t.Errorf("AdoptAgent on the agent's own connection, no forking thread reported: %v; want accepted", err)
	}
	path := filepath.Join(t.TempDir(), "relay.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	relay, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	for _, hello := range []agentproto.Hello{{}, {ForkerTID: 2}} {
		if err := rt.AdoptAgent(ctx, spec.ID, relay, hello); err == nil {
			t.Errorf("AdoptAgent(%+v) on a connection to a process outside the container: accepted; want refused", hello)
		}
	}
}

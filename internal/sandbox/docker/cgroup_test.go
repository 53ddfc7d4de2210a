package docker

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHostTID refuses a process in the host's pid namespace (NSpid has one
// id), even for its own thread, and a thread that is another process's:
// AdoptAgent moves only threads of the process answering on the agent's
// socket, in its container. (Finding one: TestWorkloadPidsGroup.)
func TestHostTID(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if got, err := hostTID(os.Getpid(), syscall.Gettid()); err == nil {
		t.Errorf("hostTID of a host process's own thread = %d; want refused (no pid namespace of its own)", got)
	}
	other := exec.Command("sleep", "30")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer other.Process.Kill()
	if got, err := hostTID(os.Getpid(), other.Process.Pid); err == nil {
		t.Errorf("hostTID(self, another process %d) = %d; want an error", other.Process.Pid, got)
	}
}

// TestStatusOfNSInit: only a process (not a thread of another) that is
// PID 1 of a pid namespace below the host's is taken as an agent.
func TestStatusOfNSInit(t *testing.T) {
	for _, tt := range []struct {
		name   string
		status string
		pid    int
		want   bool
	}{
		{"the container's init", "Name:\tagent\nTgid:\t100\nPid:\t100\nNSpid:\t100\t1\n", 100, true},
		{"init of a nested namespace", "Tgid:\t100\nNSpid:\t100\t20\t1\n", 100, true},
		{"a thread of the init", "Tgid:\t100\nPid:\t101\nNSpid:\t101\t7\n", 101, false},
		{"a thread numbered 1 in its namespace", "Tgid:\t100\nPid:\t101\nNSpid:\t101\t1\n", 101, false},
		{"a workload process", "Tgid:\t300\nNSpid:\t300\t42\n", 300, false},
		{"a host process", "Tgid:\t1\nNSpid:\t1\n", 1, false},
		{"another process's status", "Tgid:\t100\nNSpid:\t100\t1\n", 200, false},
		{"no NSpid line", "Tgid:\t100\n", 100, false},
	} {
		if got := statusOfNSInit(tt.status, tt.pid); got != tt.want {
			t.Errorf("%s: statusOfNSInit = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestPeerPID names the process listening at the other end of a unix
// socket: here this one.
func TestPeerPID(t *testing.T) {
	l, err := net.Listen("unix", t.TempDir()+"/s")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if pid, err := peerPID(c); err != nil || pid != os.Getpid() {
		t.Errorf("peerPID = %d, %v; want %d", pid, err, os.Getpid())
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := peerPID(a); err == nil {
		t.Error("peerPID of a pipe: nil error")
	}
}

// TestInContainer takes a process as the container's only when one of its
// cgroup paths has the container's full id as a part of its own: not an id
// inside another part (a sandbox id naming it), not an empty or short id.
func TestInContainer(t *testing.T) {
	self := os.Getpid()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if (agentProcess{pid: self, container: ""}).inContainer() {
		t.Error("an empty container id matched")
	}
	// This process's own cgroup path, if it has a part of 64 characters
	// (the test may itself run in a container), must match; one made up
	// must not.
	made := strings.Repeat("ab", 32)
	if (agentProcess{pid: self, container: made}).inContainer() {
		t.Errorf("a made-up id matched cgroups %q", b)
	}
	for line := range strings.Lines(string(b)) {
		for part := range strings.SplitSeq(strings.TrimSpace(line), "/") {
			if len(part) == 64 && !(agentProcess{pid: self, container: part}).inContainer() {
				t.Errorf("this process's own container id %s did not match", part)
			}
		}
	}
}

// TestKillGroupOnlyItsOwn: the host's kill of a workload group (Delete's
// fallback for a fork bomb) signals only processes in the group, even
// given a pid that has meanwhile gone to another process.
func TestKillGroupOnlyItsOwn(t *testing.T) {
	if _, err := os.Stat(pidsV1Root + "/tasks"); err != nil {
		t.Skip("skipping: no cgroup v1 pids hierarchy on this host")
	}
	dir := filepath.Join(pidsV1Root, "aetherium", "killtest-"+strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// After the helper process's own cleanup (cleanups run last first), so
	// the group is empty whatever failed.
	t.Cleanup(func() { killGroup(dir); syscall.Rmdir(dir) })
	inside, outside := exec.Command("sleep", "60"), exec.Command("sleep", "60")
	for _, c := range []*exec.Cmd{inside, outside} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		defer c.Process.Kill()
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(inside.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	// A process with only one thread of its own in the group (as the agent
	// has its forking thread there) is the group's too.
	threaded := helperProcess(t, "sleep")
	tid := otherThread(t, threaded.Process.Pid)
	if err := os.WriteFile(filepath.Join(dir, "tasks"), []byte(strconv.Itoa(tid)), 0); err != nil {
		t.Fatal(err)
	}
	group := strings.TrimPrefix(dir, pidsV1Root)
	// The outside process stands for a pid the group listed a moment ago
	// and that this host has since given to another process.
	killIn(outside.Process.Pid, group)
	killGroup(dir)
	for name, c := range map[string]*exec.Cmd{"the group's process": inside, "a process with a thread in the group": threaded} {
		if err := c.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("%s: %v; want killed", name, err)
		}
	}
	// A SIGKILL sent before would win over this SIGTERM (the process is
	// already exiting with it).
	outside.Process.Signal(syscall.SIGTERM)
	if err := outside.Wait(); err == nil || !strings.Contains(err.Error(), "terminated") {
		t.Errorf("a process outside the group: %v; want it untouched until terminated by the test", err)
	}
}

// TestHelperProcess is the other process of TestKillGroupOnlyItsOwn (the
// Go runtime has several threads from the start) and TestPinPeer (it
// listens on a unix socket); run alone it does nothing.
func TestHelperProcess(t *testing.T) {
	switch os.Getenv("AETHER_DOCKER_TEST_HELPER") {
	case "":
		return
	case "listen":
		l, err := net.Listen("unix", os.Getenv("AETHER_DOCKER_TEST_SOCKET"))
		if err != nil {
			os.Exit(2)
		}
		c, err := l.Accept()
		if err != nil {
			os.Exit(2)
		}
		defer c.Close()
	}
	time.Sleep(20 * time.Second)
	os.Exit(0)
}

// helperProcess starts TestHelperProcess as mode with env.
func helperProcess(t *testing.T, mode string, env ...string) *exec.Cmd {
	t.Helper()
	c := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	c.Env = append(os.Environ(), append(env, "AETHER_DOCKER_TEST_HELPER="+mode)...)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	return c
}

// TestPinPeer: AdoptAgent's pin of the process at the other end of its
// connection tells once that very process has ended, so /proc read by its
// pid is not taken for it after.
func TestPinPeer(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	peer := helperProcess(t, "listen", "AETHER_DOCKER_TEST_SOCKET="+sock)
	var conn net.Conn
	for i := 0; conn == nil; i++ {
		c, err := net.Dial("unix", sock)
		if err == nil {
			conn = c
		} else if i == 500 {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer conn.Close()
	pid, err := peerPID(conn)
	if err != nil || pid != peer.Process.Pid {
		t.Fatalf("peerPID = %d, %v; want %d", pid, err, peer.Process.Pid)
	}
	pin, err := pinPeer(conn, pid)
	if err != nil {
		t.Fatal(err)
	}
	defer pin.close()
	if pin < 0 {
		t.Skip("skipping: this kernel makes no pidfds (before Linux 5.3, or a seccomp filter); a pin is then none")
	}
	if !pin.alive() {
		t.Error("the listening process, alive, reads as ended")
	}
	peer.Process.Kill()
	peer.Wait()
	if pin.alive() {
		t.Error("the listening process, ended, reads as alive")
	}
	// Pinned again (Linux 6.15 hands out pidfds of ended processes): refused,
	// or a pin that reads as ended, never one of another process.
	if again, err := pinPeer(conn, pid); err == nil {
		if again.alive() {
			t.Error("a pin of the ended listening process reads as alive")
		}
		again.close()
	}
}

// otherThread returns a thread of process pid other than its main one,
// waiting for the process to have started one.
func otherThread(t *testing.T, pid int) int {
	t.Helper()
	for range 500 {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, e := range tasks {
			if tid, _ := strconv.Atoi(e.Name()); tid != pid && tid != 0 {
				return tid
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d has no second thread", pid)
	return 0
}

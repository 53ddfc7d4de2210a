package agent

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// The test binary's main goroutine keeps the main thread, so TestMain can
// start a forker there (tests themselves run on other goroutines).
func init() { runtime.LockOSThread() }

// fromMainThread is what a forker started on the main thread did with two
// forks: the thread id it reported, the threads the forks ran on.
var fromMainThread struct {
	tid     int
	started [2]int
	err     error
}

func TestMain(m *testing.M) {
	forkFromMainThread()
	os.Exit(m.Run())
}

func forkFromMainThread() {
	f := &forker{jobs: make(chan forkJob), joined: func() (bool, error) { return true, nil }}
	ready := make(chan int, 1)
	f.run(ready) // here, on the main thread: it hands over and returns
	fromMainThread.tid = <-ready
	for i := range fromMainThread.started {
		tid, err := f.wrap(func() (int, error) { return syscall.Gettid(), nil })()
		if err != nil {
			fromMainThread.err = err
			return
		}
		fromMainThread.started[i] = tid
	}
}

// TestForkNeverOnTheMainThread: a forker may be started on the main
// thread, which the host must never move (/proc/1/cgroup shows its group)
// and which cannot end (Go parks it for good); it must fork from another
// thread and report that one.
func TestForkNeverOnTheMainThread(t *testing.T) {
	t.Parallel()
	r := fromMainThread
	if r.err != nil {
		t.Fatal(r.err)
	}
	if main := os.Getpid(); r.tid == main || r.started[0] == main {
		t.Errorf("started on the main thread (%d): reported thread %d, forked on %d; want another thread for both", main, r.tid, r.started[0])
	}
}

// TestForkerKeepsItsThread: every fork runs on the one thread the forker
// reported (the one the host moves), not on a thread per fork.
func TestForkerKeepsItsThread(t *testing.T) {
	t.Parallel()
	r := fromMainThread
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.started[0] != r.tid || r.started[1] != r.tid {
		t.Errorf("forks ran on threads %v; want both on the reported thread %d", r.started, r.tid)
	}
}

// TestForkerRefusesUntilJoined: until the host moved the forker's thread
// into the workload group, no command starts (fail closed); once it is
// there, commands start and the check is not made again.
func TestForkerRefusesUntilJoined(t *testing.T) {
	t.Parallel()
	var checks, joinedAfter atomic.Int32
	joinedAfter.Store(1)
	f := startForker(func() (bool, error) { return checks.Add(1) > joinedAfter.Load(), nil })
	ran := 0
	start := f.wrap(func() (int, error) { ran++; return 42, nil })
	if _, err := start(); err == nil || !strings.Contains(err.Error(), "has not moved") || ran != 0 {
		t.Fatalf("fork before the host moved the thread: err %v, ran %d; want refused, not run", err, ran)
	}
	for range 3 {
		if pid, err := start(); err != nil || pid != 42 {
			t.Fatalf("fork after the move: %d, %v", pid, err)
		}
	}
	if ran != 3 || checks.Load() != 2 {
		t.Errorf("ran %d, checked %d times; want 3 runs and the check made until it passed (2)", ran, checks.Load())
	}
}

// TestPidsGroupOf reads the pids line of a cgroup file, and refuses a
// file without one (a cgroup v2 host has no workload group to be in).
func TestPidsGroupOf(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	v1 := filepath.Join(dir, "v1")
	os.WriteFile(v1, []byte("9:name=systemd:/docker/abc\n8:pids:/aetherium/x\n7:blkio:/docker/abc\n"), 0o644)
	if g, err := pidsGroupOf(v1); err != nil || g != "pids:/aetherium/x" {
		t.Errorf("v1 file: %q, %v", g, err)
	}
	v2 := filepath.Join(dir, "v2")
	os.WriteFile(v2, []byte("0::/user.slice\n"), 0o644)
	if g, err := pidsGroupOf(v2); err == nil {
		t.Errorf("v2 file: %q, want an error", g)
	}
	if ok, err := inOwnPidsGroup(); err == nil && ok {
		t.Errorf("a test thread nobody moved is in its own pids group")
	}
}

package agent

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The test binary's main goroutine keeps the main thread, so TestMain can
// start a forker there (tests themselves run on other goroutines).
func init() { runtime.LockOSThread() }

// fromMainThread is what a forker started on the main thread did with two
// forks: what it wrote to the tasks file, the threads they ran on.
var fromMainThread struct {
	joined  string
	started [2]int
	err     error
}

func TestMain(m *testing.M) {
	forkFromMainThread()
	os.Exit(m.Run())
}

func forkFromMainThread() {
	dir, err := os.MkdirTemp("", "agent-tasks-")
	if err != nil {
		fromMainThread.err = err
		return
	}
	defer os.RemoveAll(dir)
	// A plain file stands in for the cgroup v1 tasks file: joinGroup only
	// writes the thread's id to it. (The real group: TestWorkloadPidsGroup
	// in internal/sandbox/docker.)
	tasks, err := os.Create(filepath.Join(dir, "tasks"))
	if err != nil {
		fromMainThread.err = err
		return
	}
	defer tasks.Close()
	f := newForker(tasks)
	f.once.Do(func() { f.run(nil) }) // here, on the main thread
	for i := range fromMainThread.started {
		tid, err := f.wrap(func() (int, error) { return syscall.Gettid(), nil })()
		if err != nil {
			fromMainThread.err = err
			return
		}
		fromMainThread.started[i] = tid
	}
	b, _ := os.ReadFile(tasks.Name())
	fromMainThread.joined = string(b)
}

// TestForkNeverOnTheMainThread: a fork may be asked for on the main thread,
// which cannot end (Go parks it for good); it must join the workload group
// and fork from another thread, or the agent's main thread, and with it
// /proc/1/cgroup, would stay in the workload's group.
func TestForkNeverOnTheMainThread(t *testing.T) {
	t.Parallel()
	r := fromMainThread
	if r.err != nil {
		t.Fatal(r.err)
	}
	main := os.Getpid()
	if r.started[0] == main || strings.TrimSpace(r.joined) == strconv.Itoa(main) || r.joined == "" {
		t.Errorf("started on the main thread (%d): joined the group as %q, forked on %d; want another thread for both", main, r.joined, r.started[0])
	}
}

// TestForkerJoinsOnce: every fork runs on the one thread that joined the
// group, which joined once (a thread per fork cost a clone and an exit on
// every exec).
func TestForkerJoinsOnce(t *testing.T) {
	t.Parallel()
	r := fromMainThread
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.started[0] != r.started[1] || r.joined != strconv.Itoa(r.started[0]) {
		t.Errorf("two forks ran on threads %v and wrote %q to the tasks file; want one thread, joined once", r.started, r.joined)
	}
}

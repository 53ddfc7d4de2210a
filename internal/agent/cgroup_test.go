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
// call forkOnOwnThread there (tests themselves run on other goroutines).
func init() { runtime.LockOSThread() }

// fromMainThread is what forkOnOwnThread did when called on the main
// thread: the thread id it wrote to the tasks file, the thread start ran on.
var fromMainThread struct {
	joined  string
	started int
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
	done := make(chan forkResult, 1)
	forkOnOwnThread(tasks, func() (int, error) { return syscall.Gettid(), nil }, done)
	r := <-done
	b, _ := os.ReadFile(tasks.Name())
	fromMainThread.joined, fromMainThread.started, fromMainThread.err = string(b), r.pid, r.err
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
	if r.started == main || strings.TrimSpace(r.joined) == strconv.Itoa(main) || r.joined == "" {
		t.Errorf("called on the main thread (%d): joined the group as %q, started on %d; want another thread for both", main, r.joined, r.started)
	}
}

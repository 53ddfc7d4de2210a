package agent

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// forkInGroup wraps start (which forks one child) so that the child is born
// in the cgroup v1 group whose `tasks` file is at tasks, with no moment
// outside it: start runs on an OS thread of its own that first moves itself
// (one thread, not the agent) into the group, and the thread is discarded
// afterwards (its goroutine exits locked), so the agent never runs in the
// group. The main thread cannot end that way (Go parks it for good
// instead, which would leave it, and /proc/1/cgroup, in the group), so
// forkOnOwnThread never forks there. Threads the runtime needs meanwhile
// are cloned by its template thread, not by a locked one. Moving in
// succeeds even when the group is full; the fork then fails with EAGAIN,
// which is the limit working.
func forkInGroup(tasks *os.File, start func() (int, error)) func() (int, error) {
	return func() (int, error) {
		done := make(chan forkResult, 1)
		go forkOnOwnThread(tasks, start, done)
		r := <-done
		return r.pid, r.err
	}
}

type forkResult struct {
	pid int
	err error
}

// forkOnOwnThread locks its goroutine to the thread it runs on, never to
// unlock it, joins the group and forks. On the main thread it instead holds
// that thread while another goroutine, which then cannot run there, does
// the work. So the agent's main goroutine need not keep the main thread,
// and an idle agent has no template thread (the first command starts it):
// one thread fewer.
func forkOnOwnThread(tasks *os.File, start func() (int, error), done chan<- forkResult) {
	runtime.LockOSThread()
	if syscall.Gettid() == syscall.Getpid() {
		elsewhere := make(chan forkResult, 1)
		go forkOnOwnThread(tasks, start, elsewhere)
		r := <-elsewhere
		runtime.UnlockOSThread()
		done <- r
		return
	}
	if err := joinGroup(tasks); err != nil {
		done <- forkResult{0, err}
		return
	}
	pid, err := start()
	done <- forkResult{pid, err}
}

// joinGroup moves the calling thread into the group of a cgroup v1 tasks file.
func joinGroup(tasks *os.File) error {
	if _, err := tasks.WriteString(strconv.Itoa(syscall.Gettid())); err != nil {
		return fmt.Errorf("workload cgroup: join: %w", err)
	}
	return nil
}

// OpenWorkloadTasks opens the cgroup v1 tasks file at path for
// Config.WorkloadTasks and checks that it is one: a regular file of a cgroup
// file system. Call it before any command runs.
func OpenWorkloadTasks(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("workload cgroup: %w", err)
	}
	var fs unix.Statfs_t
	fi, err := f.Stat()
	if err == nil {
		err = unix.Fstatfs(int(f.Fd()), &fs)
	}
	if err != nil || !fi.Mode().IsRegular() || fs.Type != unix.CGROUP_SUPER_MAGIC {
		f.Close()
		return nil, fmt.Errorf("workload cgroup: %s is not a cgroup v1 tasks file (%v)", path, err)
	}
	return f, nil
}

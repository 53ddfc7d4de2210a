package agent

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
)

// forkInGroup wraps start (which forks one child) so that the child is born
// in the cgroup v1 group whose `tasks` file is at tasks, with no moment
// outside it: start runs on an OS thread of its own that first moves itself
// (one thread, not the agent) into the group, and the thread is discarded
// afterwards (its goroutine exits locked), so the agent never runs in the
// group. The main thread cannot end that way: cmd/aether-agent keeps it for
// its main goroutine. Threads the runtime needs meanwhile are cloned by its template
// thread, not by a locked one. Moving in succeeds even when the group is
// full; the fork then fails with EAGAIN, which is the limit working.
func forkInGroup(tasks string, start func() (int, error)) func() (int, error) {
	return func() (int, error) {
		type result struct {
			pid int
			err error
		}
		done := make(chan result, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
			if err := joinGroup(tasks); err != nil {
				done <- result{0, err}
				return
			}
			pid, err := start()
			done <- result{pid, err}
		}()
		r := <-done
		return r.pid, r.err
	}
}

// joinGroup moves the calling thread into the group of a cgroup v1 tasks file.
func joinGroup(tasks string) error {
	f, err := os.OpenFile(tasks, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("workload cgroup: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(strconv.Itoa(syscall.Gettid())); err != nil {
		return fmt.Errorf("workload cgroup: join: %w", err)
	}
	return nil
}

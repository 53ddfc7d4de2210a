package agent

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
)

// forker forks every command from one OS thread of its own, which the
// host moves into the sandbox's workload pids group (cgroup v1) once the
// handshake told it the thread's id (agentproto.Hello.ForkerTID), so that
// each child is born in the group with no moment outside it, and the agent
// (every other thread) never runs there. No tasks file is ever inside the
// sandbox: a root workload that could write one could also move the
// agent's own threads into the group it fills, and a full group leaves the
// Go runtime unable to make a thread. Until the thread is in another pids
// group than the agent's, commands are refused (fail closed). The thread
// stays for the agent's life (a thread per command cost a clone and an exit
// on every exec); it is one task of the group's pids. A full group fails
// the fork with EAGAIN, which is the limit working. Threads the runtime
// needs meanwhile are cloned by its template thread, not by the locked one.
type forker struct {
	tid  int // the thread's id, in the agent's pid namespace
	jobs chan forkJob
	// joined reports whether the calling thread is in the workload group.
	joined func() (bool, error)
}

type forkJob struct {
	start func() (int, error)
	done  chan<- forkResult
}

type forkResult struct {
	pid int
	err error
}

// startForker starts the forker's thread and returns once it serves.
func startForker(joined func() (bool, error)) *forker {
	f := &forker{jobs: make(chan forkJob), joined: joined}
	ready := make(chan int, 1)
	go f.run(ready)
	f.tid = <-ready
	return f
}

// wrap returns start made to run on the forker's thread.
func (f *forker) wrap(start func() (int, error)) func() (int, error) {
	return func() (int, error) {
		done := make(chan forkResult, 1)
		f.jobs <- forkJob{start, done}
		r := <-done
		return r.pid, r.err
	}
}

// run locks its goroutine to the thread it runs on, never to unlock it,
// sends the thread's id on ready and serves forks there. On the main thread
// it instead holds that thread while another goroutine, which then cannot
// run there, takes over, and returns: the host must never move the main
// thread, whose group /proc/1/cgroup shows, and the agent's main goroutine
// need not keep it (an idle agent has no template thread: one thread fewer).
func (f *forker) run(ready chan<- int) {
	runtime.LockOSThread()
	if syscall.Gettid() == syscall.Getpid() {
		elsewhere := make(chan int, 1)
		go f.run(elsewhere)
		ready <- <-elsewhere
		runtime.UnlockOSThread()
		return
	}
	ready <- syscall.Gettid()
	joined := false
	for j := range f.jobs {
		if !joined {
			ok, err := f.joined()
			if err == nil && !ok {
				err = fmt.Errorf("workload pids group: the host has not moved the agent's forking thread (%d) into it", syscall.Gettid())
			}
			if err != nil {
				j.done <- forkResult{0, err}
				continue
			}
			joined = true
		}
		pid, err := j.start()
		j.done <- forkResult{pid, err}
	}
}

// inOwnPidsGroup reports whether the calling thread is in another cgroup
// v1 pids group than the agent's main thread: where the host put it.
func inOwnPidsGroup() (bool, error) {
	mine, err := pidsGroupOf("/proc/thread-self/cgroup")
	if err != nil {
		return false, err
	}
	main, err := pidsGroupOf("/proc/self/cgroup")
	if err != nil {
		return false, err
	}
	return mine != main, nil
}

// pidsGroupOf returns the pids line of a /proc cgroup file.
func pidsGroupOf(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("workload pids group: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if _, rest, ok := strings.Cut(line, ":"); ok && strings.HasPrefix(rest, "pids:") {
			return strings.TrimSpace(rest), nil
		}
	}
	return "", fmt.Errorf("workload pids group: no cgroup v1 pids hierarchy in %s", path)
}

package agent

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// forker forks every command from one OS thread of its own that joined the
// cgroup v1 group whose `tasks` file is tasks, so that each child is born in
// the group with no moment outside it, and the agent (every other thread)
// never runs there. The thread joins once, on the first fork, and stays:
// a thread made and joined per command cost the agent a clone and an exit
// on every exec. It is one task of the group's pids. Moving in succeeds
// even when the group is full; the fork then fails with EAGAIN, which is the
// limit working. Threads the runtime needs meanwhile are cloned by its
// template thread, not by the locked one.
type forker struct {
	tasks *os.File
	once  sync.Once
	jobs  chan forkJob
}

type forkJob struct {
	start func() (int, error)
	done  chan<- forkResult
}

type forkResult struct {
	pid int
	err error
}

func newForker(tasks *os.File) *forker {
	return &forker{tasks: tasks, jobs: make(chan forkJob)}
}

// wrap returns start made to run on the forker's thread.
func (f *forker) wrap(start func() (int, error)) func() (int, error) {
	return func() (int, error) {
		f.once.Do(func() { go f.run(nil) })
		done := make(chan forkResult, 1)
		f.jobs <- forkJob{start, done}
		r := <-done
		return r.pid, r.err
	}
}

// run locks its goroutine to the thread it runs on, never to unlock it,
// and serves forks there; ready, when not nil, is closed once it serves.
// On the main thread it instead holds that thread while another goroutine,
// which then cannot run there, takes over, and returns: Go would park the
// main thread for good under a goroutine that exits locked, and a main
// thread in the group would put /proc/1/cgroup there. So the agent's main
// goroutine need not keep the main thread, and an idle agent has no
// template thread (the first command starts it): one thread fewer.
func (f *forker) run(ready chan<- struct{}) {
	runtime.LockOSThread()
	if syscall.Gettid() == syscall.Getpid() {
		elsewhere := make(chan struct{})
		go f.run(elsewhere)
		<-elsewhere
		runtime.UnlockOSThread()
		return
	}
	if ready != nil {
		close(ready)
	}
	joined := false
	for j := range f.jobs {
		if !joined {
			if err := joinGroup(f.tasks); err != nil {
				j.done <- forkResult{0, err}
				continue
			}
			joined = true
		}
		pid, err := j.start()
		j.done <- forkResult{pid, err}
	}
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

package agent

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// reaper owns every wait4 call in the agent. As PID 1 the agent inherits
// orphans that must be reaped, and wait4(-1) would steal exit statuses from
// os/exec's Wait; so nothing else waits, and exec registers the pids it wants
// to hear about.
//
// Ordering: start registers a child while holding mu, and the reaper
// dispatches a status only while holding mu, so a child that exits before
// registration still has its status delivered.
type reaper struct {
	mu      sync.Mutex
	waiters map[int]chan syscall.WaitStatus
}

func startReaper() *reaper {
	r := &reaper{waiters: make(map[int]chan syscall.WaitStatus)}
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGCHLD)
	go func() {
		// First the orphans that ended before this process was (a dormant
		// agent's waiter execs it with children it has not reaped).
		r.reapAll()
		for range sigc {
			r.reapAll()
		}
	}()
	return r
}

// start runs startFn (which must start exactly one child and return its pid)
// and returns a channel that receives the child's wait status.
func (r *reaper) start(startFn func() (int, error)) (<-chan syscall.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := startFn()
	if err != nil {
		return nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	r.waiters[pid] = ch
	return ch, nil
}

func (r *reaper) reapAll() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		r.mu.Lock()
		if ch, ok := r.waiters[pid]; ok {
			ch <- ws
			delete(r.waiters, pid)
		}
		r.mu.Unlock()
	}
}

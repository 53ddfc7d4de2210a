package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// sleeper swaps the agent for aether-waiter when it goes dormant (see
// agent.Config.Dormant and cmd/aether-waiter), and back. The swap is an
// execve each way, so PID 1 stays the same process, with its children and
// its listening socket; aetherd's next connection wakes it.
//
// Both programs are reached through descriptors opened when the container
// started, before any command ran: the workload (root in its container) can
// rename what a path names by the time of a later exec, a descriptor it
// cannot change. They are raw descriptors, not os.Files, whose Fd would make
// the socket the live listener shares blocking.
type sleeper struct {
	listener, self, waiter int
	args                   []string // this agent's flags, without --resume
	stopping               context.Context
}

// newSleeper opens what going dormant needs: a descriptor of l, this binary
// and the waiter at path.
func newSleeper(stopping context.Context, l net.Listener, path string, args []string) (*sleeper, error) {
	ul, ok := l.(*net.UnixListener)
	if !ok {
		return nil, fmt.Errorf("dormancy needs a unix socket, not %T", l)
	}
	rc, err := ul.SyscallConn()
	if err != nil {
		return nil, err
	}
	lfd := -1
	cerr := rc.Control(func(fd uintptr) { lfd, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3) })
	if err = errors.Join(cerr, err); err != nil {
		return nil, fmt.Errorf("the listening socket: %w", err)
	}
	self, err := openExec("/proc/self/exe")
	if err != nil {
		unix.Close(lfd)
		return nil, err
	}
	waiter, err := openExec(path)
	if err != nil {
		unix.Close(lfd)
		unix.Close(self)
		return nil, err
	}
	return &sleeper{listener: lfd, self: self, waiter: waiter, args: args, stopping: stopping}, nil
}

// openExec opens an executable regular file for a later exec.
func openExec(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, fmt.Errorf("%s is not a regular file", path)
	}
	return fd, nil
}

// resumeFlag carries the three descriptors to the agent the waiter starts.
const resumeFlag = "--resume"

// resume takes the descriptors a waiter passed on (LISTEN,SELF,WAITER) and
// returns the listener and a sleeper for the next dormancy. Nothing else in
// the agent may start a process before they are close-on-exec again, so
// this runs first.
func resume(stopping context.Context, spec string, args []string) (net.Listener, *sleeper, error) {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		return nil, nil, fmt.Errorf("%s %q: want LISTEN,SELF,WAITER descriptors", resumeFlag, spec)
	}
	fds := make([]int, 3)
	for i, s := range parts {
		fd, err := strconv.Atoi(s)
		if err != nil || fd < 3 {
			return nil, nil, fmt.Errorf("%s %q: bad descriptor %q", resumeFlag, spec, s)
		}
		unix.CloseOnExec(fd)
		fds[i] = fd
	}
	l, err := listenerOf(fds[0])
	if err != nil {
		return nil, nil, fmt.Errorf("%s: the listening socket: %w", resumeFlag, err)
	}
	return l, &sleeper{listener: fds[0], self: fds[1], waiter: fds[2], args: args, stopping: stopping}, nil
}

// listenerOf returns a listener on a descriptor of its own for the socket
// of fd, which stays the caller's: an os.File made of fd itself would close
// it when collected.
func listenerOf(fd int) (net.Listener, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), "listener")
	defer f.Close()
	return net.FileListener(f)
}

// sleep execs the waiter; it returns only on failure, or when the agent is
// stopping (a SIGTERM it took would not reach the waiter). The descriptors
// lose close-on-exec only under syscall.ForkLock, so no command started
// meanwhile inherits them, and get it back if the exec fails.
func (s *sleeper) sleep() error {
	fds := []int{s.listener, s.self, s.waiter}
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	if err := s.stopping.Err(); err != nil {
		return err
	}
	defer func() {
		for _, fd := range fds {
			unix.CloseOnExec(fd)
		}
	}()
	for _, fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return err
		}
	}
	// An exec makes a process dumpable again until the new program says
	// otherwise, and the workload, which has PID 1's uid and capabilities,
	// could open /proc/1/mem in that moment (it wakes the waiter at will).
	// With a real gid other than the effective one the kernel makes the
	// new program non-dumpable from its first instruction, and refuses the
	// workload (whose gids all match) meanwhile; each program sets it back
	// (dropPtrace). Without CAP_SETGID the agent stays awake instead.
	egid := unix.Getegid()
	if err := syscall.Setresgid(otherGID(egid), egid, egid); err != nil {
		return fmt.Errorf("set a real gid for a non-dumpable exec: %w", err)
	}
	defer syscall.Setresgid(egid, egid, egid)
	argv := append([]string{"aether-waiter", strconv.Itoa(s.listener), strconv.Itoa(s.self), os.Args[0]}, s.args...)
	argv = append(argv, resumeFlag, fmt.Sprintf("%d,%d,%d", s.listener, s.self, s.waiter))
	// The kernel resolves /proc/self/fd/N to the open file itself; exec
	// by path keeps the runtime's own exec lock (syscall.Exec), which
	// execveat would not.
	err := syscall.Exec(fmt.Sprintf("/proc/self/fd/%d", s.waiter), argv, os.Environ())
	return errors.Join(errors.New("exec aether-waiter"), err)
}

// otherGID is a gid other than gid.
func otherGID(gid int) int {
	if gid == 65534 {
		return 65533
	}
	return 65534
}

// dropPtrace makes the agent non-dumpable, so the workload, which has its
// uid and capabilities, can neither ptrace it nor open its /proc files
// (memory, descriptors), then gives back the real gid a dormancy's exec
// borrowed (see sleep).
func dropPtrace() {
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	if g, eg := os.Getgid(), os.Getegid(); g != eg {
		syscall.Setresgid(eg, eg, eg)
	}
}

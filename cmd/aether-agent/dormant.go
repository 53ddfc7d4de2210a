package main

import (
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
// cannot change.
type sleeper struct {
	listener *os.File // the listening socket
	self     *os.File // this agent's binary
	waiter   *os.File // aether-waiter
	args     []string // this agent's flags, without --resume
}

// newSleeper opens what going dormant needs: this binary, the waiter at path
// and a descriptor of l.
func newSleeper(l net.Listener, path string, args []string) (*sleeper, error) {
	ul, ok := l.(*net.UnixListener)
	if !ok {
		return nil, fmt.Errorf("dormancy needs a unix socket, not %T", l)
	}
	lf, err := ul.File()
	if err != nil {
		return nil, err
	}
	self, err := openExec("/proc/self/exe")
	if err != nil {
		lf.Close()
		return nil, err
	}
	waiter, err := openExec(path)
	if err != nil {
		lf.Close()
		self.Close()
		return nil, err
	}
	return &sleeper{listener: lf, self: self, waiter: waiter, args: args}, nil
}

// openExec opens an executable regular file for a later exec.
func openExec(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// resumeFlag carries the three descriptors to the agent the waiter starts.
const resumeFlag = "--resume"

// resume takes the descriptors a waiter passed on (LISTEN,SELF,WAITER) and
// returns the listener and a sleeper for the next dormancy. Nothing else in
// the agent may start a process before they are close-on-exec again, so
// this runs first.
func resume(spec string, args []string) (net.Listener, *sleeper, error) {
	fds := strings.Split(spec, ",")
	if len(fds) != 3 {
		return nil, nil, fmt.Errorf("%s %q: want LISTEN,SELF,WAITER descriptors", resumeFlag, spec)
	}
	files := make([]*os.File, 3)
	for i, s := range fds {
		fd, err := strconv.Atoi(s)
		if err != nil || fd < 3 {
			return nil, nil, fmt.Errorf("%s %q: bad descriptor %q", resumeFlag, spec, s)
		}
		unix.CloseOnExec(fd)
		files[i] = os.NewFile(uintptr(fd), "fd"+s)
	}
	l, err := net.FileListener(files[0])
	if err != nil {
		return nil, nil, fmt.Errorf("%s: the listening socket: %w", resumeFlag, err)
	}
	return l, &sleeper{listener: files[0], self: files[1], waiter: files[2], args: args}, nil
}

// sleep execs the waiter; it returns only on failure. The descriptors lose
// close-on-exec only under syscall.ForkLock, so no command started meanwhile
// inherits them, and get it back if the exec fails.
func (s *sleeper) sleep() error {
	files := []*os.File{s.listener, s.self, s.waiter}
	fds := make([]string, len(files))
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	for i, f := range files {
		fd := int(f.Fd())
		fds[i] = strconv.Itoa(fd)
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			s.restore()
			return err
		}
	}
	argv := append([]string{"aether-waiter", fds[0], fds[1], os.Args[0]}, s.args...)
	argv = append(argv, resumeFlag, strings.Join(fds, ","))
	// The kernel resolves /proc/self/fd/N to the open file itself; exec
	// by path keeps the runtime's own exec lock (syscall.Exec), which
	// execveat would not.
	err := syscall.Exec(fmt.Sprintf("/proc/self/fd/%d", s.waiter.Fd()), argv, os.Environ())
	s.restore()
	return errors.Join(errors.New("exec aether-waiter"), err)
}

func (s *sleeper) restore() {
	for _, f := range []*os.File{s.listener, s.self, s.waiter} {
		unix.CloseOnExec(int(f.Fd()))
	}
}

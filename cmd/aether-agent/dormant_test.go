package main

import (
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func TestWithoutResume(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"--listen", "unix:/s", "--resume", "8,9,10"}, []string{"--listen", "unix:/s"}},
		{[]string{"-resume=8,9,10", "--workload-group"}, []string{"--workload-group"}},
		{[]string{"--dormant-after", "5s", "--resume", "1,2,3", "--waiter", "/w"}, []string{"--dormant-after", "5s", "--waiter", "/w"}},
		{[]string{"resume", "--resumed"}, []string{"resume", "--resumed"}},
	} {
		if got := withoutResume(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("withoutResume(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

// TestResumeKeepsDescriptors: the descriptors a waiter passes on stay open
// for the next dormancy, garbage collections included, and close-on-exec.
func TestResumeKeepsDescriptors(t *testing.T) {
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "agent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := l.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	self, err := openExec("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	waiter, err := openExec("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	lfd := int(f.Fd())
	for _, fd := range []int{lfd, self, waiter} {
		unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0) // as the waiter passes them
	}
	rl, sl, err := resume(t.Context(), fmt.Sprintf("%d,%d,%d", lfd, self, waiter), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	runtime.GC()
	runtime.GC()
	for _, fd := range []int{sl.listener, sl.self, sl.waiter} {
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("descriptor %d after resume and a collection: flags %#x, %v; want open and close-on-exec", fd, flags, err)
		}
	}
	runtime.KeepAlive(f)
}

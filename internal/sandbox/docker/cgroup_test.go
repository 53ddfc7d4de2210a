package docker

import (
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
)

// TestHostTID finds a thread of a process by its id in the process's pid
// namespace (here the host's, so the same id), and refuses an id that is
// another process's: AdoptAgent moves only the agent's own threads.
func TestHostTID(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := syscall.Gettid()
	if got, err := hostTID(os.Getpid(), tid); err != nil || got != tid {
		t.Errorf("hostTID(self, %d) = %d, %v; want %d", tid, got, err, tid)
	}
	other := exec.Command("sleep", "30")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer other.Process.Kill()
	if got, err := hostTID(os.Getpid(), other.Process.Pid); err == nil {
		t.Errorf("hostTID(self, another process %d) = %d; want an error", other.Process.Pid, got)
	}
}

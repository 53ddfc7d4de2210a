package docker

import (
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
)

// TestHostTID refuses a process in the host's pid namespace (NSpid has one
// id), even for its own thread, and a thread that is another process's:
// AdoptAgent moves only threads of a container's init. (Finding one:
// TestWorkloadPidsGroup.)
func TestHostTID(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if got, err := hostTID(os.Getpid(), syscall.Gettid()); err == nil {
		t.Errorf("hostTID of a host process's own thread = %d; want refused (no pid namespace of its own)", got)
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

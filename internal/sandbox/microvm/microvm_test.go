package microvm

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/sandbox"
)

type testMeta struct {
	Base
	Extra string `json:"extra"`
}

// TestDirsOwnership: a sandbox directory belongs to the runtime instance
// named in its meta.json; others see it as missing.
func TestDirsOwnership(t *testing.T) {
	root := t.TempDir()
	mine, theirs := &Dirs{Root: root, Owner: "me"}, &Dirs{Root: root, Owner: "other"}
	base, err := NewBase(&sandbox.Spec{ID: "vm1"}, "me", false)
	if err != nil || base.MemoryMB != 512 || base.VCPUs != 1 {
		t.Fatalf("NewBase = %+v, %v; want 512 MiB, 1 vCPU", base, err)
	}
	os.MkdirAll(mine.Dir("vm1"), 0o755)
	if err := mine.Write(&testMeta{Base: *base, Extra: "x"}); err != nil {
		t.Fatal(err)
	}
	var got testMeta
	if err := mine.Read("vm1", &got); err != nil || got.Extra != "x" || got.ID != "vm1" {
		t.Errorf("Read = %+v, %v", got, err)
	}
	if err := theirs.Read("vm1", &got); !errors.Is(err, errdefs.ErrNotFound) || theirs.Exists("vm1") {
		t.Errorf("another owner's Read = %v, want ErrNotFound", err)
	}
	if _, err := NewBase(&sandbox.Spec{ID: "../escape"}, "me", false); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("NewBase with a path in the ID: %v", err)
	}
}

// TestPID: a live process naming the sandbox counts; a pid file pointing at
// an unrelated or exited process does not.
func TestPID(t *testing.T) {
	d := &Dirs{Root: t.TempDir(), Owner: "me"}
	id := "sandbox-abc"
	os.MkdirAll(d.Dir(id), 0o755)
	writePID := func(pid int) { os.WriteFile(filepath.Join(d.Dir(id), "pid"), []byte(strconv.Itoa(pid)), 0o644) }

	cmd := exec.Command("sh", "-c", "sleep 30; true", id) // $0 names the sandbox in its command line
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	writePID(cmd.Process.Pid)
	if d.PID(id) != cmd.Process.Pid {
		t.Errorf("PID of a live process naming the sandbox = %d", d.PID(id))
	}
	writePID(os.Getpid()) // alive, but not this sandbox's
	if d.PID(id) != 0 {
		t.Error("a reused pid counted as the sandbox's VMM")
	}
	writePID(cmd.Process.Pid)
	cmd.Process.Kill()
	cmd.Wait()
	if d.PID(id) != 0 {
		t.Error("an exited process counted as running")
	}
}

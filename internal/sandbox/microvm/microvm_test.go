package microvm

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/sandbox"
)

// TestDirsOwnership: a sandbox directory belongs to the runtime instance
// named in its meta.json; others see it as missing.
func TestDirsOwnership(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	mine, theirs := &Dirs{Root: root, Owner: "me"}, &Dirs{Root: root, Owner: "other"}
	meta, err := NewMeta(&sandbox.Spec{ID: "vm1"}, "me", false)
	if err != nil || meta.MemoryMB != 512 || meta.VCPUs != 1 {
		t.Fatalf("NewMeta = %+v, %v; want 512 MiB, 1 vCPU", meta, err)
	}
	os.MkdirAll(mine.Dir("vm1"), 0o755)
	meta.Jailed = true
	if err := mine.Write(meta); err != nil {
		t.Fatal(err)
	}
	if got, err := mine.Read("vm1"); err != nil || !got.Jailed || got.ID != "vm1" {
		t.Errorf("Read = %+v, %v", got, err)
	}
	if _, err := theirs.Read("vm1"); !errors.Is(err, errdefs.ErrNotFound) || theirs.Exists("vm1") {
		t.Errorf("another owner's Read = %v, want ErrNotFound", err)
	}
	if _, err := NewMeta(&sandbox.Spec{ID: "../escape"}, "me", false); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("NewMeta with a path in the ID: %v", err)
	}
}

// TestDirsIndex: what spans all sandboxes (CIDs in use) comes from the
// in-memory index, which a Dirs made on a root with sandboxes fills from
// the disk, Write extends and Remove shrinks, and which reads no
// meta.json per call (issue 13: the QEMU runtime read every meta.json on
// every call, console trimming once a second).
func TestDirsIndex(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write := func(d *Dirs, id string, cid uint32) {
		t.Helper()
		m, _ := NewMeta(&sandbox.Spec{ID: id}, "me", false)
		m.CID = cid
		os.MkdirAll(d.Dir(id), 0o755)
		if err := d.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	before := &Dirs{Root: root, Owner: "me"}
	write(before, "vm1", 7)
	d := &Dirs{Root: root, Owner: "me"}
	if used := d.UsedCIDs(""); !used[7] {
		t.Errorf("UsedCIDs from the disk = %v, want 7 in use", used)
	}
	write(d, "vm2", 8)
	if used := d.UsedCIDs(""); !used[7] || !used[8] {
		t.Errorf("UsedCIDs after Write = %v, want 7 and 8", used)
	}
	if err := d.Remove("vm1"); err != nil || d.Exists("vm1") {
		t.Fatalf("Remove: %v", err)
	}
	if used := d.UsedCIDs(""); used[7] || !used[8] {
		t.Errorf("UsedCIDs after Remove = %v, want 8 only", used)
	}
	// A meta.json changed behind the index's back is not read again.
	write(before, "vm2", 9)
	if used := d.UsedCIDs(""); !used[8] {
		t.Errorf("UsedCIDs = %v: read the disk again, want the index (8)", used)
	}
}

// TestPID: a live process naming the sandbox counts; a pid file pointing at
// an unrelated or exited process does not.
func TestPID(t *testing.T) {
	t.Parallel()
	d := &Dirs{Root: t.TempDir(), Owner: "me"}
	id := "sandbox-abc"
	os.MkdirAll(d.Dir(id), 0o755)
	writePID := func(pid int) { os.WriteFile(filepath.Join(d.Dir(id), "pid"), []byte(strconv.Itoa(pid)), 0o644) }

	cmd := exec.Command("sh", "-c", "sleep 30; true", id) // $0 names the sandbox in its command line
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Start returns once execve has begun; the new command line shows in
	// /proc a moment later (a window a loaded host widens). A VMM writes
	// its pid file long after that.
	for i := 0; i < 500 && !strings.Contains(readCmdline(cmd.Process.Pid), id); i++ {
		time.Sleep(10 * time.Millisecond)
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

// TestConsoleRing guards the console log against unbounded growth (issue
// 10): a guest that floods its console costs at most about 2×keep blocks
// once trimmed, the writer (holding the file open, appending) keeps
// writing, and Console reads the tail by seeking, skipping the hole.
func TestConsoleRing(t *testing.T) {
	t.Parallel()
	d := &Dirs{Root: t.TempDir(), Owner: "me"}
	os.MkdirAll(d.Dir("vm1"), 0o755)
	path := filepath.Join(d.Dir("vm1"), consoleFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const keep = 64 << 10
	line := []byte(strings.Repeat("x", 1023) + "\n")
	for i := range 1024 { // 1 MiB, trimmed as it grows
		f.Write(line)
		if i%100 == 0 {
			if err := trimConsole(path, keep); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.Write([]byte("the end\n"))
	if err := trimConsole(path, keep); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	syscall.Stat(path, &st)
	if st.Size != 1<<20+8 || st.Blocks*512 > 2*keep+8192 {
		t.Errorf("after trims: size %d, allocated %d; want size %d, allocated <= %d", st.Size, st.Blocks*512, 1<<20+8, 2*keep+8192)
	}
	got, err := d.Console("vm1", 1<<20)
	if err != nil || !strings.HasSuffix(string(got), "x\nthe end\n") || len(got) > 2*keep+4096 || strings.ContainsRune(string(got), 0) {
		t.Errorf("Console(1 MiB) = %d bytes (suffix %q), %v; want the kept tail, no NULs", len(got), got[max(len(got)-16, 0):], err)
	}
	if got, err := d.Console("vm1", 8); err != nil || string(got) != "the end\n" {
		t.Errorf("Console(8) = %q, %v", got, err)
	}
	if _, err := d.Console("vm2", 8); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Console of a sandbox without a log: %v, want ErrNotFound", err)
	}
}

func readCmdline(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return string(b)
}

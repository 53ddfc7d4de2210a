package network

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestLockHost: while LockHost holds a name, another open file description
// of its lock file cannot take it; after the release it can.
func TestLockHost(t *testing.T) {
	name := "test-" + filepath.Base(t.TempDir())
	unlock := LockHost(name)
	dir := "/run/aetherium"
	if os.Geteuid() != 0 {
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("aetherium-%d", os.Geteuid()))
	}
	path := filepath.Join(dir, name+".lock")
	defer os.Remove(path)
	other, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if syscall.Flock(int(other.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
		t.Fatal("another holder took the lock LockHost holds")
	}
	unlock()
	if err := syscall.Flock(int(other.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("the lock is still held after the release: %v", err)
	}
}

// TestOwnLockDir refuses a lock directory others can write or that is a
// symlink (a local user could otherwise plant a lock file and hold it).
func TestOwnLockDir(t *testing.T) {
	base := t.TempDir()
	if err := ownLockDir(filepath.Join(base, "new")); err != nil {
		t.Errorf("a new directory: %v", err)
	}
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	if ownLockDir(open) == nil {
		t.Error("a world-writable directory was accepted")
	}
	link := filepath.Join(base, "link")
	os.Symlink(filepath.Join(base, "new"), link)
	if ownLockDir(link) == nil {
		t.Error("a symlink was accepted")
	}
}

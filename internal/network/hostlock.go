package network

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// hostLockWait bounds how long LockHost waits for a holder; a lock held
// longer than any aetherd holds one (an nft run, a network create) is
// not ours to wait for.
const hostLockWait = 30 * time.Second

// LockHost takes a host-wide lock named name (an flock on a file in a
// directory only this user can write: /run/aetherium for root), for state
// that every aetherd process on the host shares: the nftables tables, a
// Docker network. It waits at most hostLockWait and returns the release.
// Without a usable lock directory, or past the wait, it locks nothing:
// callers keep their in-process mutex.
func LockHost(name string) (unlock func()) {
	dir := "/run/aetherium"
	if os.Geteuid() != 0 {
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("aetherium-%d", os.Geteuid()))
	}
	if err := ownLockDir(dir); err != nil {
		return func() {}
	}
	fd, err := os.OpenFile(filepath.Join(dir, name+".lock"), os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return func() {}
	}
	deadline := time.Now().Add(hostLockWait)
	for wait := time.Millisecond; ; wait = min(2*wait, 20*time.Millisecond) {
		if syscall.Flock(int(fd.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			return func() { fd.Close() } // closing releases the flock
		}
		if time.Now().After(deadline) {
			fd.Close()
			return func() {}
		}
		time.Sleep(wait)
	}
}

// ownLockDir makes dir (mode 0700) if it is missing and checks it is a
// real directory of this user that nobody else can write, so no other
// local user can plant or hold its lock files.
func ownLockDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("lock directory %s is not a directory of uid %d that only it can write", dir, os.Geteuid())
	}
	return nil
}

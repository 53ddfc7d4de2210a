package e2e

import (
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/aetherium/aetherium/internal/testbin"
)

// TestMain runs the tests, then removes what the daemons' Docker runtime
// made on this host and leaves behind by design (it persists across
// restarts): the default sandbox network, aether-docker, and its nftables
// table. Removal fails harmlessly while a running container uses it, but
// not while a sandbox is between its container's create and start, so it
// is done only by the last e2e run on the host: each holds a shared flock
// while it runs and removes the network only if it can then take the lock
// alone. A copy of this binary that testbin.InNetns runs inside a network
// namespace (one test, while the others go on) never removes it: CI once
// saw a sandbox's start fail with "network aether-docker not found" that
// way. (The runtime also makes a removed network again on start.)
func TestMain(m *testing.M) {
	lock, _ := os.OpenFile(os.TempDir()+"/aetherium-e2e-running.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if lock != nil {
		syscall.Flock(int(lock.Fd()), syscall.LOCK_SH)
	}
	code := m.Run()
	if testbin.InNetnsChild() || lock == nil || syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		os.Exit(code) // another e2e run is under way
	}
	if exec.Command("docker", "network", "rm", "aether-docker").Run() == nil {
		exec.Command("nft", "delete", "table", "inet", "aether-docker").Run()
	}
	os.Exit(code)
}

package e2e

import (
	"os"
	"os/exec"
	"testing"

	"github.com/aetherium/aetherium/internal/testbin"
)

// TestMain runs the tests, then removes what the daemons' Docker runtime
// made on this host and leaves behind by design (it persists across
// restarts): the default sandbox network, aether-docker, and its nftables
// table. Removal fails harmlessly while a running container uses it, but
// not while a sandbox is between its container's create and start, so a
// copy of this binary that testbin.InNetns runs inside a network namespace
// (one test, while the others go on) leaves it alone: CI once saw a
// sandbox's start fail with "network aether-docker not found" that way.
func TestMain(m *testing.M) {
	code := m.Run()
	if testbin.InNetnsChild() {
		os.Exit(code)
	}
	if exec.Command("docker", "network", "rm", "aether-docker").Run() == nil {
		exec.Command("nft", "delete", "table", "inet", "aether-docker").Run()
	}
	os.Exit(code)
}

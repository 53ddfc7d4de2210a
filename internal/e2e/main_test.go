package e2e

import (
	"os"
	"os/exec"
	"testing"
)

// TestMain runs the tests, then removes what the daemons' Docker runtime
// made on this host and leaves behind by design (it persists across
// restarts): the default sandbox network, aether-docker, and its nftables
// table. Removal fails harmlessly while a container still uses it.
func TestMain(m *testing.M) {
	code := m.Run()
	if exec.Command("docker", "network", "rm", "aether-docker").Run() == nil {
		exec.Command("nft", "delete", "table", "inet", "aether-docker").Run()
	}
	os.Exit(code)
}

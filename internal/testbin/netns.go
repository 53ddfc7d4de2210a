package testbin

import (
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"strings"
	"testing"
)

const netnsEnv = "AETHER_TEST_NETNS"

// InNetnsChild reports whether this process is a test binary that InNetns
// runs inside a namespace (so TestMain's host-wide cleanup is not its to do).
func InNetnsChild() bool { return os.Getenv(netnsEnv) != "" }

// InNetns runs the calling test in a network namespace of its own, so it may
// create bridges, TAPs and iptables rules without touching the host's
// network. The first call creates the namespace and runs this test binary
// again inside it (`ip netns exec`), limited to this test, then removes the
// namespace and returns false: the caller returns. Inside, it returns true
// and the test does its work. Loopback is up in the namespace.
func InNetns(t *testing.T) bool {
	t.Helper()
	if InNetnsChild() {
		return true
	}
	_, err := exec.LookPath("ip")
	if err == nil && os.Geteuid() != 0 {
		err = fmt.Errorf("network namespaces need root")
	}
	Need(t, "ip netns (iproute2, root)", err)
	// Unique per test: parallel tests of one binary each get their own.
	h := fnv.New32a()
	h.Write([]byte(t.Name()))
	name := fmt.Sprintf("aether-test-%d-%08x", os.Getpid(), h.Sum32())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "delete", name).Run()
	exec.Command("ip", "-n", name, "link", "set", "lo", "up").Run()
	args := []string{"netns", "exec", name, os.Args[0], "-test.run", "^" + strings.ReplaceAll(t.Name(), "/", "$/^") + "$", "-test.v", "-test.count=1"}
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), netnsEnv+"="+name)
	out, err := cmd.CombinedOutput()
	t.Logf("in network namespace %s:\n%s", name, out)
	if err != nil {
		t.Fatalf("test failed in network namespace %s: %v", name, err)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s did not pass in the namespace (skipped or not run)", t.Name())
	}
	return false
}

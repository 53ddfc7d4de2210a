package testbin

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netns"
)

// Stand-in addresses StandInOutside serves: none of them is a real
// service; they exist only on the loopback of a namespace the test made.
const (
	// StandInPublic stands in for a public internet address (a
	// documentation range, which egress policies treat as public).
	StandInPublic = "198.51.100.1"
	// StandInPrivate stands in for an RFC1918 address (a LAN host).
	StandInPrivate = "10.200.0.1"
	// StandInMetadata stands in for the cloud metadata service.
	StandInMetadata = "169.254.169.254"
	// StandInPort is where StandInOutside listens on each of them.
	StandInPort = 8080
)

// StandInOutside makes, from inside a test's own network namespace
// (InNetns), a second namespace behind a veth and routes this namespace's
// default route into it, so "the outside" is three stand-in addresses
// (StandInPublic, StandInPrivate, StandInMetadata) on its loopback with a
// listener on StandInPort that accepts and closes. Removed at cleanup.
func StandInOutside(t *testing.T) {
	t.Helper()
	if os.Getenv(netnsEnv) == "" {
		t.Fatal("StandInOutside outside a test namespace (call InNetns first)")
	}
	name := fmt.Sprintf("aether-out-%d", os.Getpid())
	mustIP(t, "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })
	mustIP(t, "link", "add", "aeout0", "type", "veth", "peer", "name", "eth0", "netns", name)
	mustIP(t, "addr", "add", "100.127.255.1/30", "dev", "aeout0")
	mustIP(t, "link", "set", "aeout0", "up")
	mustIP(t, "-n", name, "link", "set", "lo", "up")
	mustIP(t, "-n", name, "addr", "add", "100.127.255.2/30", "dev", "eth0")
	mustIP(t, "-n", name, "link", "set", "eth0", "up")
	for _, a := range []string{StandInPublic, StandInPrivate, StandInMetadata} {
		mustIP(t, "-n", name, "addr", "add", a+"/32", "dev", "lo")
	}
	mustIP(t, "-n", name, "route", "add", "default", "via", "100.127.255.1")
	mustIP(t, "route", "replace", "default", "via", "100.127.255.2")
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ListenIn(t, &h, StandInPort)
}

// ListenIn accepts and closes TCP connections on every address of a
// namespace (nil: the caller's) at port (0: any) and returns the port.
func ListenIn(t *testing.T, h *netns.NsHandle, port int) int {
	t.Helper()
	var l net.Listener
	var err error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if h != nil {
			runtime.LockOSThread() // never unlocked: the thread dies in the namespace
			if err = netns.Set(*h); err != nil {
				return
			}
		}
		l, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
	}()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// ProbeScript is a bash script that tries a TCP connection to each
// name=host:port target at once (each for timeoutS seconds: long enough
// for a slow guest, since a drop looks like a timeout) and prints the names
// it reached: connected or refused (a reset came back, so packets passed).
func ProbeScript(targets map[string]string, timeoutS int) string {
	var b strings.Builder
	for name, target := range targets {
		host, port, _ := strings.Cut(target, ":")
		fmt.Fprintf(&b, "if o=$(timeout %d bash -c 'exec 3<>/dev/tcp/%s/%s' 2>&1) || [[ $o == *refused* ]]; then echo %s; fi &\n", timeoutS, host, port, name)
	}
	return b.String() + "wait\n"
}

func mustIP(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

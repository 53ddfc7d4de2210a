package network_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/aetherium/aetherium/internal/egress"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/network"
	"github.com/aetherium/aetherium/internal/testbin"
)

// Stand-ins. Everything below lives in network namespaces this test makes
// inside its own (testbin.InNetns): the "host" is the test's namespace with
// the bridge; "outside" is a namespace behind a veth that holds, on its
// loopback, stand-ins for a public address (198.51.100.1 and 203.0.113.9,
// documentation ranges), an RFC1918 address (10.200.0.1) and the cloud
// metadata address (169.254.169.254); "guests" are namespaces on the
// bridge through veths named like TAPs. No packet leaves the test's
// namespaces.
const (
	publicStandIn   = "198.51.100.1"
	public2StandIn  = "203.0.113.9"
	privateStandIn  = "10.200.0.1"
	metadataStandIn = "169.254.169.254"
	outsidePort     = 8080
	hostPort        = 8081
	guestPort       = 8082
)

// TestEgressFirewall sends real connections from stand-in guests through
// the Firewall of a Manager: the default (internet) reaches only public
// stand-ins; none reaches nothing; an allowlist reaches exactly what it
// lists; the host, the metadata address, RFC1918 and other guests are out
// of reach; a guest that spoofs its address or sends without an entry
// reaches nothing. Then it removes rules one at a time (mutations) and
// checks that the probes notice.
func TestEgressFirewall(t *testing.T) {
	if !testbin.InNetns(t) {
		return
	}
	ctx := context.Background()
	m, err := network.New(network.Config{Bridge: "aethertest0", Subnet: netip.MustParsePrefix("10.96.0.0/24"), NAT: true, DNS: []string{}},
		openStore(t, t.TempDir()+"/aether.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Teardown(ctx) })
	outside := newNS(t, "out")
	veth(t, "aeto0", "100.127.255.1/30", outside, "eth0", "100.127.255.2/30", "100.127.255.1")
	mustRun(t, "ip", "route", "add", "default", "via", "100.127.255.2")
	for _, a := range []string{publicStandIn, public2StandIn, privateStandIn, metadataStandIn} {
		mustRun(t, "ip", "-n", outside.name, "addr", "add", a+"/32", "dev", "lo")
	}
	mustRun(t, "ip", "-n", outside.name, "route", "add", "10.96.0.0/24", "via", "100.127.255.1")
	listen(t, outside, outsidePort)
	listen(t, nil, hostPort) // a listener on the host, all addresses
	br, _ := netlink.LinkByName("aethertest0")
	g1 := guest(t, br, "ae-g1", "10.96.0.11")
	g2 := guest(t, br, "ae-g2", "10.96.0.12")
	listen(t, g2.ns, guestPort)
	// g1 reaches g2 through the gateway (isolated ports stop the direct
	// path), so the probe tests the firewall, not only the bridge.
	g1.run(t, "route", "add", "10.96.0.12/32", "via", "10.96.0.1")
	g2.run(t, "route", "add", "10.96.0.11/32", "via", "10.96.0.1")

	all := map[string]string{ // name → address:port
		"public":   fmt.Sprintf("%s:%d", publicStandIn, outsidePort),
		"public2":  fmt.Sprintf("%s:%d", public2StandIn, outsidePort),
		"rfc1918":  fmt.Sprintf("%s:%d", privateStandIn, outsidePort),
		"metadata": fmt.Sprintf("%s:%d", metadataStandIn, outsidePort),
		"gateway":  fmt.Sprintf("10.96.0.1:%d", hostPort),
		"host":     fmt.Sprintf("100.127.255.1:%d", hostPort),
		"guest2":   fmt.Sprintf("10.96.0.12:%d", guestPort),
	}
	fw := m.Firewall()
	apply := func(p egress.Policy, allow ...string) {
		t.Helper()
		var pre []netip.Prefix
		for _, a := range allow {
			pre = append(pre, netip.MustParsePrefix(a))
		}
		for _, g := range []*stubGuest{g1, g2} {
			if err := fw.Apply(ctx, &network.Rule{ID: g.name, Addr: g.addr, Policy: p, Allow: pre, Port: g.port, MAC: g.mac}); err != nil {
				t.Fatal(err)
			}
			g.run(t, "neigh", "flush", "all") // ARP dropped while it had no entry
		}
	}
	check := func(label string, want ...string) {
		t.Helper()
		got := reach(g1.ns, all)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: guest reaches %v, want exactly %v", label, got, want)
		}
	}

	check("no entry (fail closed)")
	apply(egress.Policy{Mode: egress.Internet})
	check("internet", "public", "public2")
	apply(egress.Policy{}) // unset is internet
	check("unset", "public", "public2")
	apply(egress.Policy{Mode: egress.None})
	check("none")
	apply(egress.Policy{Allow: []string{"10.200.0.1/32"}}, "10.200.0.1/32")
	check("allowlist of the RFC1918 stand-in", "rfc1918")
	apply(egress.Policy{Allow: []string{"198.51.100.0/24"}}, "198.51.100.0/24")
	check("allowlist of one public range", "public")

	// Spoofing: the guest sends as the other guest (whose address has an
	// internet entry); its port binding drops that before routing, so the
	// outside stand-in sees no SYN.
	apply(egress.Policy{Mode: egress.Internet})
	mustRun(t, "ip", "netns", "exec", outside.name, "nft", "add table ip syns; add chain ip syns in { type filter hook input priority 0; }; add rule ip syns in tcp dport 8081 tcp flags syn counter")
	spoof := func() bool {
		g1.run(t, "addr", "add", "10.96.0.12/32", "dev", "eth0")
		dialFrom(g1.ns, "10.96.0.12", fmt.Sprintf("%s:%d", publicStandIn, hostPort))
		g1.run(t, "addr", "del", "10.96.0.12/32", "dev", "eth0")
		// ARP asked with the spoofed source was dropped by the port
		// binding, which may leave the gateway's entry failed.
		g1.run(t, "neigh", "flush", "all")
		out, _ := exec.Command("ip", "netns", "exec", outside.name, "nft", "list", "chain", "ip", "syns", "in").CombinedOutput()
		return !strings.Contains(string(out), "packets 0 ")
	}
	if spoof() {
		t.Error("a packet with another guest's source address left the host")
	}
	if b, _ := os.ReadFile("/proc/sys/net/ipv6/conf/aethertest0/disable_ipv6"); string(b) != "1\n" {
		t.Errorf("IPv6 on the bridge: disable_ipv6 = %q, want 1 (no link-local path to the host)", b)
	}
	check("internet again", "public", "public2")

	// Mutations: each removed rule must make a probe fail.
	mutate(t, "inet", "sb-"+g1.name, "@deny4 drop")
	check("mutant: sandbox chain without the deny rule", "guest2", "metadata", "public", "public2", "rfc1918")
	apply(egress.Policy{Mode: egress.Internet})
	mutate(t, "inet", "input", `iifname "aethertest0" drop`)
	check("mutant: input chain without the host guard", "gateway", "host", "public", "public2")
	if err := m.Setup(ctx); err != nil { // Setup restores the base chains
		t.Fatal(err)
	}
	check("after Setup", "public", "public2")
	mutate(t, "bridge", "port-"+g1.name, "ip saddr != 10.96.0.11 drop")
	if !spoof() {
		t.Error("mutant port chain without the address binding: the spoofing probe did not notice")
	}

	if err := fw.Remove(ctx, g1.name); err != nil {
		t.Fatal(err)
	}
	if err := fw.Remove(ctx, g1.name); err != nil {
		t.Fatalf("second Remove (idempotent): %v", err)
	}
	if ids, _ := fw.Sandboxes(ctx); len(ids) != 1 || ids[0] != g2.name {
		t.Errorf("after Remove, sandboxes with chains %v, want [%s]", ids, g2.name)
	}
	if err := fw.Prune(ctx, func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("nft", "list", "ruleset").CombinedOutput()
	if strings.Contains(string(out), "sb-") || strings.Contains(string(out), "port-ae") || strings.Contains(string(out), "10.96.0.1") {
		t.Errorf("entries survived Remove/Prune:\n%s", out)
	}
}

// TestAttachInstallsPolicy: Attach installs the sandbox's chain and port
// binding, and Detach removes both.
func TestAttachInstallsPolicy(t *testing.T) {
	if !testbin.InNetns(t) {
		return
	}
	ctx := context.Background()
	m := newManager(t, openStore(t, t.TempDir()+"/aether.db"), "10.95.0.0/24")
	t.Cleanup(func() { m.Teardown(ctx) })
	ep, err := m.Attach(ctx, "vm-a", egress.Policy{Allow: []string{"192.0.2.0/24"}})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("nft", "list", "ruleset").CombinedOutput()
	for _, want := range []string{"chain sb-vm-a", "ip daddr 192.0.2.0/24 accept", ep.Address.Addr().String() + " : jump sb-vm-a",
		`"` + ep.Tap + `" : jump port-vm-a`, "ether saddr != " + ep.MAC.String() + " drop"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ruleset lacks %q:\n%s", want, out)
		}
	}
	if _, err := m.Attach(ctx, "vm-b", egress.Policy{Allow: []string{"no-such-host.invalid"}}); err == nil {
		t.Error("an allowlisted hostname that does not resolve was accepted")
	}
	if err := m.Detach(ctx, "vm-a"); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("nft", "list", "ruleset").CombinedOutput(); strings.Contains(string(out), "vm-a") {
		t.Errorf("Detach left entries:\n%s", out)
	}
}

type testNS struct {
	name string
	h    netns.NsHandle
}

func newNS(t *testing.T, suffix string) *testNS {
	t.Helper()
	name := fmt.Sprintf("aether-t%d-%s", os.Getpid(), suffix)
	mustRun(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })
	mustRun(t, "ip", "-n", name, "link", "set", "lo", "up")
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return &testNS{name: name, h: h}
}

// veth links this namespace (hostEnd, hostAddr) with ns (peerName,
// peerAddr, default route via gw).
func veth(t *testing.T, hostEnd, hostAddr string, ns *testNS, peerName, peerAddr, gw string) {
	t.Helper()
	mustRun(t, "ip", "link", "add", hostEnd, "type", "veth", "peer", "name", hostEnd+"p")
	mustRun(t, "ip", "link", "set", hostEnd+"p", "netns", ns.name)
	mustRun(t, "ip", "-n", ns.name, "link", "set", hostEnd+"p", "name", peerName)
	if hostAddr != "" {
		mustRun(t, "ip", "addr", "add", hostAddr, "dev", hostEnd)
	}
	mustRun(t, "ip", "link", "set", hostEnd, "up")
	mustRun(t, "ip", "-n", ns.name, "addr", "add", peerAddr, "dev", peerName)
	mustRun(t, "ip", "-n", ns.name, "link", "set", peerName, "up")
	mustRun(t, "ip", "-n", ns.name, "route", "add", "default", "via", gw)
}

// stubGuest is a stand-in for a microVM: a namespace on the bridge
// through a veth whose host end is named like a TAP.
type stubGuest struct {
	name, port string
	ns         *testNS
	addr       netip.Addr
	mac        net.HardwareAddr
}

func guest(t *testing.T, br netlink.Link, port, addr string) *stubGuest {
	t.Helper()
	g := &stubGuest{name: port, port: port, ns: newNS(t, port), addr: netip.MustParseAddr(addr)}
	veth(t, port, "", g.ns, "eth0", addr+"/24", "10.96.0.1")
	mustRun(t, "ip", "link", "set", port, "master", br.Attrs().Name)
	mustRun(t, "ip", "link", "set", port, "type", "bridge_slave", "isolated", "on")
	l, err := netlink.LinkByName(port)
	if err != nil {
		t.Fatal(err)
	}
	_ = l
	out, err := exec.Command("ip", "-n", g.ns.name, "-br", "link", "show", "eth0").Output()
	if err != nil {
		t.Fatal(err)
	}
	if g.mac, err = net.ParseMAC(strings.Fields(string(out))[2]); err != nil {
		t.Fatal(err)
	}
	return g
}

func (g *stubGuest) run(t *testing.T, args ...string) {
	t.Helper()
	mustRun(t, "ip", append([]string{"-n", g.ns.name}, args...)...)
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// inNS runs f on a thread in ns (nil: the test's own namespace); sockets
// made there stay in ns.
func inNS(ns *testNS, f func()) {
	if ns == nil {
		f()
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		runtime.LockOSThread() // never unlocked: the thread dies with its namespace
		if err := netns.Set(ns.h); err != nil {
			panic(err)
		}
		f()
	}()
	wg.Wait()
}

// listen accepts connections on every address of ns at port and closes them.
func listen(t *testing.T, ns *testNS, port int) {
	t.Helper()
	var l net.Listener
	var err error
	inNS(ns, func() { l, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port)) })
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
}

// dialFrom reports whether a TCP connection from ns (source address src,
// "" for any) to addr completes within a second.
func dialFrom(ns *testNS, src, addr string) bool {
	ok := false
	inNS(ns, func() {
		d := net.Dialer{Timeout: time.Second}
		if src != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
		}
		c, err := d.Dial("tcp4", addr)
		if err == nil {
			c.Close()
			ok = true
		}
	})
	return ok
}

// reach probes every target at once and returns the names reached, sorted.
func reach(ns *testNS, targets map[string]string) []string {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var got []string
	for name, addr := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if dialFrom(ns, "", addr) {
				mu.Lock()
				got = append(got, name)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(got)
	return got
}

// mutate deletes the first rule of a chain of the aetherium table whose
// text contains match.
func mutate(t *testing.T, family, chain, match string) {
	t.Helper()
	out, err := exec.Command("nft", "-a", "list", "chain", family, "aetherium", chain).CombinedOutput()
	if err != nil {
		t.Fatalf("list %s: %v: %s", chain, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.Index(line, "# handle "); i > 0 && strings.Contains(line, match) {
			mustRun(t, "nft", "delete", "rule", family, "aetherium", chain, "handle", strings.TrimSpace(line[i+len("# handle "):]))
			return
		}
	}
	t.Fatalf("no rule %q in %s:\n%s", match, chain, out)
}

// TestFirewallBatchesConcurrentChanges: changes made at once share nft
// runs (issue 13: each sandbox's create and delete waited on two or three
// nft processes per sandbox before it, in turn), and still each lands: 24
// concurrent Applies leave 24 chains and map entries; Applies racing
// Removes of sandboxes whose addresses they take over (one transaction
// deleting an element twice fails, so the batch falls back to one change
// at a time) all succeed; concurrent Removes leave nothing.
func TestFirewallBatchesConcurrentChanges(t *testing.T) {
	if !testbin.InNetns(t) {
		return
	}
	ctx := context.Background()
	fw := setUpFirewall(t, "aetbatch")
	at := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 97, 0, byte(10 + i)}) }
	each := func(n int, do func(i int) error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() { errs <- do(i) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	sandboxes := func() []string {
		t.Helper()
		ids, err := fw.Sandboxes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(ids)
		return ids
	}
	each(24, func(i int) error {
		return fw.Apply(ctx, &network.Rule{ID: fmt.Sprintf("a%02d", i), Addr: at(i)})
	})
	if got := sandboxes(); len(got) != 24 {
		t.Fatalf("after 24 concurrent Applies: %d chains %v", len(got), got)
	}
	each(24, func(i int) error {
		if i%2 == 0 {
			return fw.Remove(ctx, fmt.Sprintf("a%02d", i))
		}
		return fw.Apply(ctx, &network.Rule{ID: fmt.Sprintf("b%02d", i), Addr: at(i - 1)}) // a(i-1)'s address
	})
	out, err := exec.Command("nft", "list", "map", "inet", "aetbatch", "sandboxes").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for i := 1; i < 24; i += 2 {
		if want := fmt.Sprintf("%s : jump sb-b%02d", at(i-1), i); !strings.Contains(string(out), want) {
			t.Errorf("map lacks %q:\n%s", want, out)
		}
	}
	each(24, func(i int) error {
		return errors.Join(fw.Remove(ctx, fmt.Sprintf("a%02d", i)), fw.Remove(ctx, fmt.Sprintf("b%02d", i)))
	})
	if got := sandboxes(); len(got) != 0 {
		t.Errorf("after removing all: chains %v", got)
	}
}

// TestClaimGivesEachSandboxItsOwnAddress: the sandboxes map is the host's
// allocation table for Docker sandboxes' static addresses (issue 13: the
// rules go in before the container starts, so Create needs no inspect). A
// freed address is not given again at once; two firewalls on one table
// (two aetherd processes sharing a network) claiming 24 addresses at once
// from a /27 get distinct ones, none reserved, each pointing at its
// claimer's chain; a full pool refuses the next claim; a second claim of
// one sandbox moves its entry.
func TestClaimGivesEachSandboxItsOwnAddress(t *testing.T) {
	if !testbin.InNetns(t) {
		return
	}
	ctx := context.Background()
	// Two processes' firewalls on one table.
	fws := [2]*network.Firewall{setUpFirewall(t, "aetclaim"), setUpFirewall(t, "aetclaim")}
	pool := netip.MustParsePrefix("10.96.0.0/27") // 30 addresses besides reserved
	reserved := []netip.Addr{pool.Addr(), pool.Addr().Next()}
	claim := func(fw *network.Firewall, id string) (netip.Addr, error) {
		return fw.Claim(ctx, &network.Rule{ID: id}, pool, reserved...)
	}
	mapped := func() string {
		t.Helper()
		out, err := exec.Command("nft", "list", "map", "inet", "aetclaim", "sandboxes").CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return regexp.MustCompile(` comment "claimed \d+"`).ReplaceAllString(string(out), "")
	}

	x, err := claim(fws[0], "x")
	if err != nil || x != netip.MustParseAddr("10.96.0.2") {
		t.Fatalf("first claim: %s, %v; want 10.96.0.2", x, err)
	}
	if err := fws[0].Remove(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if y, err := claim(fws[0], "y"); err != nil || y != x.Next() {
		t.Fatalf("claim after freeing %s: %s, %v; want %s (a freed address waits its turn)", x, y, err, x.Next())
	}
	if err := fws[0].Remove(ctx, "y"); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	got := map[netip.Addr]string{}
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Go(func() {
			id := fmt.Sprintf("c%02d", i)
			a, err := claim(fws[i%2], id)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("claim %s: %v", id, err)
			case got[a] != "":
				t.Errorf("claim %s got %s, already %s's", id, a, got[a])
			case !pool.Contains(a) || slices.Contains(reserved, a):
				t.Errorf("claim %s got %s: outside %s or reserved", id, a, pool)
			}
			got[a] = id
		})
	}
	wg.Wait()
	m := mapped()
	for a, id := range got {
		if !strings.Contains(m, fmt.Sprintf("%s : jump sb-%s", a, id)) {
			t.Errorf("map lacks %s → sb-%s:\n%s", a, id, m)
		}
	}

	for i := range 6 {
		if _, err := claim(fws[1], fmt.Sprintf("d%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if a, err := claim(fws[0], "full"); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("claim from a full pool: %s, %v; want ErrUnavailable", a, err)
	}

	var moved netip.Addr
	for a, id := range got {
		if id == "c00" {
			moved = a
		}
	}
	if err := fws[1].Remove(ctx, "d3"); err != nil {
		t.Fatal(err)
	}
	b, err := claim(fws[1], "c00")
	if err != nil || b == moved {
		t.Fatalf("second claim of c00 (at %s) with one address free: %s, %v", moved, b, err)
	}
	if m := mapped(); strings.Contains(m, moved.String()+" : jump") || !strings.Contains(m, b.String()+" : jump sb-c00") {
		t.Errorf("after c00 moved from %s to %s:\n%s", moved, b, m)
	}
}

// TestFirewallRemoveFromKnownMap: Apply, Claim and Remove run no nft
// process (issue 13: an nft run cost 20–30 ms of CPU on every create and
// delete; they talk netlink), and a Remove starts from the map this
// process knows. When the map changed behind this process's back (another
// aetherd's Prune deleted the element), the Remove still succeeds from a
// fresh listing; when another process gave the address to its own sandbox,
// the Remove leaves that sandbox's entry alone.
func TestFirewallRemoveFromKnownMap(t *testing.T) {
	if !testbin.InNetns(t) {
		return
	}
	ctx := context.Background()
	real, err := exec.LookPath("nft")
	if err != nil {
		t.Skip("nft not installed")
	}
	dir := t.TempDir()
	runs := dir + "/runs"
	wrapper := "#!/bin/sh\necho \"$*\" >> " + runs + "\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(dir+"/nft", []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	fw := setUpFirewall(t, "aetknown")
	nftRuns := func() int {
		b, _ := os.ReadFile(runs)
		os.Remove(runs)
		return strings.Count(string(b), "\n")
	}
	nftRuns() // Setup's
	if err := fw.Apply(ctx, &network.Rule{ID: "x", Addr: netip.AddrFrom4([4]byte{10, 95, 0, 10})}); err != nil {
		t.Fatal(err)
	}
	if y, err := fw.Claim(ctx, &network.Rule{ID: "y"}, netip.MustParsePrefix("10.95.0.11/32")); err != nil || y.String() != "10.95.0.11" {
		t.Fatalf("claim: %s, %v", y, err)
	}
	if err := fw.Remove(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if n := nftRuns(); n != 0 {
		t.Errorf("Apply, Claim and Remove ran nft %d times, want none", n)
	}
	mustRun(t, real, "delete", "element", "inet", "aetknown", "sandboxes", "{ 10.95.0.11 }") // another process's Prune
	if err := fw.Remove(ctx, "y"); err != nil {
		t.Fatalf("Remove after the map changed behind it: %v", err)
	}
	ids, err := fw.Sandboxes(ctx)
	if err != nil || len(ids) != 0 {
		t.Errorf("after removing both: chains %v, %v", ids, err)
	}

	// Another process prunes z and gives its address to its own sandbox w:
	// a Remove of z from the known map must not delete w's entry.
	if err := fw.Apply(ctx, &network.Rule{ID: "z", Addr: netip.AddrFrom4([4]byte{10, 95, 0, 12})}); err != nil {
		t.Fatal(err)
	}
	mustRun(t, real, "delete element inet aetknown sandboxes { 10.95.0.12 }; add chain inet aetknown sb-w; "+
		"add element inet aetknown sandboxes { 10.95.0.12 : jump sb-w }")
	if err := fw.Remove(ctx, "z"); err != nil {
		t.Fatalf("Remove of a sandbox whose address another took: %v", err)
	}
	out, err := exec.Command(real, "list", "map", "inet", "aetknown", "sandboxes").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "10.95.0.12 : jump sb-w") {
		t.Errorf("w's entry is gone after z's Remove (%v):\n%s", err, out)
	}
}

// TestFirewallLargeBatches: a burst of changes too big for one netlink
// transaction (a review found 50 Applies lost their acknowledgements, and
// 200, or a Prune of 600 leftovers, could not be sent at all) lands whole:
// 200 concurrent Applies, each with a 64-prefix allowlist and a bound port,
// leave 200 chains and map entries; a Prune of them all leaves none. An
// allowlist prefix that is not IPv4 is refused, not applied.
func TestFirewallLargeBatches(t *testing.T) {
	if !testbin.InNetns(t) {
		return
	}
	ctx := context.Background()
	fw, err := network.NewFirewall(network.FirewallConfig{Table: "aetbig", Interfaces: []string{"aetbig0"}, Ports: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fw.Teardown(context.Background()) })
	var allow []netip.Prefix
	for i := range 64 {
		allow = append(allow, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, byte(i), 0}), 24))
	}
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			mac := net.HardwareAddr{2, 0, 0, 0, byte(i >> 8), byte(i)}
			r := &network.Rule{ID: fmt.Sprintf("s%03d", i), Addr: netip.AddrFrom4([4]byte{10, 94, byte(i >> 8), byte(i)}),
				Policy: egress.Policy{Allow: []string{"x"}}, Allow: allow, Port: fmt.Sprintf("ae-s%03d", i), MAC: mac}
			if err := fw.Apply(ctx, r); err != nil {
				t.Errorf("apply %s: %v", r.ID, err)
			}
		})
	}
	wg.Wait()
	if ids, err := fw.Sandboxes(ctx); err != nil || len(ids) != n {
		t.Fatalf("after %d Applies: %d chains, %v", n, len(ids), err)
	}
	out, err := exec.Command("nft", "list", "map", "inet", "aetbig", "sandboxes").CombinedOutput()
	if err != nil || strings.Count(string(out), ": jump sb-") != n {
		t.Fatalf("map after %d Applies (%v): %d entries", n, err, strings.Count(string(out), ": jump sb-"))
	}
	if err := fw.Prune(ctx, func(string) bool { return false }); err != nil {
		t.Fatalf("prune %d: %v", n, err)
	}
	if ids, err := fw.Sandboxes(ctx); err != nil || len(ids) != 0 {
		t.Errorf("after Prune: %d chains, %v", len(ids), err)
	}
	v6 := &network.Rule{ID: "v6", Addr: netip.MustParseAddr("10.94.9.9"), Policy: egress.Policy{Allow: []string{"x"}},
		Allow: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}}
	if err := fw.Apply(ctx, v6); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("apply with an IPv6 allowlist prefix: %v, want ErrInvalidArgument", err)
	}
}

// setUpFirewall sets up the tables named table for the interface table+"0"
// and tears them down when the test ends.
func setUpFirewall(t *testing.T, table string) *network.Firewall {
	t.Helper()
	fw, err := network.NewFirewall(network.FirewallConfig{Table: table, Interfaces: []string{table + "0"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fw.Teardown(context.Background()) })
	return fw
}

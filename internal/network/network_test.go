package network_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/aetherium/aetherium/internal/egress"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/network"
	"github.com/aetherium/aetherium/internal/store/sqlite"
	"github.com/aetherium/aetherium/internal/store/sqlstore"
	"github.com/aetherium/aetherium/internal/testbin"
)

func openStore(t *testing.T, path string) *sqlstore.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newManager(t *testing.T, s network.Leases, subnet string) *network.Manager {
	t.Helper()
	m, err := network.New(network.Config{Bridge: "aethertest0", Subnet: netip.MustParsePrefix(subnet), NAT: true, DNS: []string{"192.0.2.53"}}, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestBridgeTapsAndLeases runs in a network namespace of its own: it builds
// the bridge, attaches sandboxes concurrently, restarts the manager on the
// same store, detaches, prunes and tears down, checking the kernel's view
// (links, masters, isolation, addresses, iptables rules) at each step.
func TestBridgeTapsAndLeases(t *testing.T) {
	if !testbin.InNetns(t) {
		return
	}
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "aether.db")
	st := openStore(t, dbPath)
	m := newManager(t, st, "10.99.0.0/24")
	if err := m.Setup(ctx); err != nil {
		t.Fatalf("second Setup (idempotent): %v", err)
	}
	br := mustLink(t, "aethertest0")
	addrs, _ := netlink.AddrList(br, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IPNet.String() != "10.99.0.1/24" || br.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("bridge addresses %v, flags %v; want up with exactly 10.99.0.1/24", addrs, br.Attrs().Flags)
	}
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); string(b) != "1\n" {
		t.Errorf("ip_forward = %q", b)
	}
	iptablesHas(t, true, "nat", "POSTROUTING", "-s", "10.99.0.0/24", "!", "-o", "aethertest0", "-j", "MASQUERADE")
	nftHas(t, true, "inet", "input", `iifname "aethertest0" drop`) // no host access by default

	eps := attachAll(t, m, 6)
	seen := map[string]bool{}
	for id, ep := range eps {
		if seen[ep.Address.String()] || seen[ep.MAC.String()] {
			t.Errorf("%s got a used address or MAC: %s %s", id, ep.Address, ep.MAC)
		}
		seen[ep.Address.String()], seen[ep.MAC.String()] = true, true
		if ep.Gateway.String() != "10.99.0.1" || ep.Address.Bits() != 24 || ep.Address.Addr().String() == "10.99.0.1" {
			t.Errorf("%s: endpoint %+v", id, ep)
		}
		tap := mustLink(t, ep.Tap)
		if tap.Type() != "tuntap" || tap.Attrs().MasterIndex != br.Attrs().Index || tap.Attrs().Alias != "aether:"+id {
			t.Errorf("%s: tap %s type %s master %d alias %q", id, ep.Tap, tap.Type(), tap.Attrs().MasterIndex, tap.Attrs().Alias)
		}
		if b, _ := os.ReadFile("/sys/class/net/" + ep.Tap + "/brport/isolated"); string(b) != "1\n" {
			t.Errorf("%s: bridge port not isolated (%q)", ep.Tap, b)
		}
	}
	again, err := m.Attach(ctx, "vm-0", egress.Policy{})
	if err != nil || again.Address != eps["vm-0"].Address || again.MAC.String() != eps["vm-0"].MAC.String() {
		t.Errorf("re-Attach vm-0 = %+v, %v; want %+v", again, err, eps["vm-0"])
	}

	// A restart: a new manager on the reopened store keeps every lease.
	st.Close()
	m = newManager(t, openStore(t, dbPath), "10.99.0.0/24")
	fresh, err := m.Attach(ctx, "vm-new", egress.Policy{})
	if err != nil || seen[fresh.Address.String()] {
		t.Fatalf("after restart, Attach = %+v, %v: reused an address", fresh, err)
	}
	if ep, _ := m.Attach(ctx, "vm-3", egress.Policy{}); ep.Address != eps["vm-3"].Address {
		t.Errorf("after restart vm-3 moved from %s to %s", eps["vm-3"].Address, ep.Address)
	}

	if err := m.Detach(ctx, "vm-0"); err != nil {
		t.Fatal(err)
	}
	if err := m.Detach(ctx, "vm-0"); err != nil {
		t.Fatalf("second Detach (idempotent): %v", err)
	}
	if _, err := netlink.LinkByName(eps["vm-0"].Tap); err == nil {
		t.Error("vm-0's tap survived Detach")
	}
	if reuse, _ := m.Attach(ctx, "vm-after", egress.Policy{}); reuse.Address != eps["vm-0"].Address {
		t.Errorf("freed address %s not reused (got %s)", eps["vm-0"].Address, reuse.Address)
	}

	keep := map[string]bool{"vm-1": true}
	if err := m.Prune(ctx, func(id string) bool { return keep[id] }); err != nil {
		t.Fatal(err)
	}
	if taps := ourTaps(t); len(taps) != 1 || taps[0] != "aether:vm-1" {
		t.Errorf("after Prune, taps %v, want only vm-1's", taps)
	}

	open, err := network.New(network.Config{Bridge: "aethertest0", Subnet: netip.MustParsePrefix("10.99.0.0/24"), HostAccess: true}, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := open.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	nftHas(t, false, "inet", "input", `iifname "aethertest0" drop`) // host_access turned on removes it

	if err := m.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName("aethertest0"); err == nil {
		t.Error("bridge survived Teardown")
	}
	iptablesHas(t, false, "nat", "POSTROUTING", "-s", "10.99.0.0/24", "!", "-o", "aethertest0", "-j", "MASQUERADE")
}

// TestSubnetExhausted: a /29 has 5 guest addresses (network, gateway and
// broadcast excluded); the sixth sandbox gets a clear error, not a duplicate.
func TestSubnetExhausted(t *testing.T) {
	if !testbin.InNetns(t) {
		return
	}
	m := newManager(t, openStore(t, filepath.Join(t.TempDir(), "aether.db")), "10.98.0.8/29")
	for i := range 5 {
		if _, err := m.Attach(context.Background(), fmt.Sprint("vm-", i), egress.Policy{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := m.Attach(context.Background(), "vm-5", egress.Policy{})
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("sixth Attach err = %v, want ErrUnavailable", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []network.Config{
		{Bridge: "a-bridge-name-too-long"},
		{Subnet: netip.MustParsePrefix("fd00::/64")},
		{Subnet: netip.MustParsePrefix("10.0.0.0/30")},
	} {
		if _, err := network.New(cfg, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("New(%+v) err = %v, want ErrInvalidArgument", cfg, err)
		}
	}
}

func attachAll(t *testing.T, m *network.Manager, n int) map[string]*network.Endpoint {
	var mu sync.Mutex
	var wg sync.WaitGroup
	eps := map[string]*network.Endpoint{}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint("vm-", i)
			ep, err := m.Attach(context.Background(), id, egress.Policy{})
			if err != nil {
				t.Errorf("Attach %s: %v", id, err)
				return
			}
			mu.Lock()
			eps[id] = ep
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return eps
}

func mustLink(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l
}

func ourTaps(t *testing.T) []string {
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if a := l.Attrs().Alias; len(a) > 7 && a[:7] == "aether:" {
			out = append(out, a)
		}
	}
	return out
}

func iptablesHas(t *testing.T, want bool, table string, rule ...string) {
	t.Helper()
	err := exec.Command("iptables", append([]string{"-w", "-t", table, "-C"}, rule...)...).Run()
	if (err == nil) != want {
		t.Errorf("iptables -t %s %v present = %v, want %v", table, rule, err == nil, want)
	}
}

// TestTapPool: Prepare (the root half) makes pool TAPs owned by the
// unprivileged uid; a pool-mode manager then hands them out and takes them
// back without creating, changing or deleting any link.
func TestTapPool(t *testing.T) {
	if !testbin.InNetns(t) {
		return
	}
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "aether.db"))
	cfg := network.Config{Bridge: "aethertest0", Subnet: netip.MustParsePrefix("10.97.0.0/24"), DNS: []string{}, TapOwner: 65534}
	root, err := network.New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := root.Prepare(ctx, 3); err != nil {
			t.Fatal(err)
		}
	}
	br := mustLink(t, "aethertest0")
	for i := range 3 {
		tap := mustLink(t, network.PoolTapName(i))
		owner, _ := os.ReadFile("/sys/class/net/" + tap.Attrs().Name + "/owner")
		iso, _ := os.ReadFile("/sys/class/net/" + tap.Attrs().Name + "/brport/isolated")
		if string(owner) != "65534\n" || string(iso) != "1\n" || tap.Attrs().MasterIndex != br.Attrs().Index || tap.Attrs().Alias != "aether-pool" {
			t.Errorf("pool tap %s: owner %q isolated %q master %d alias %q", tap.Attrs().Name, owner, iso, tap.Attrs().MasterIndex, tap.Attrs().Alias)
		}
	}
	before := linkSnapshot(t)

	cfg.TapPool, cfg.ClaimDir = true, t.TempDir()
	pool, err := network.New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := pool.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	eps := map[string]*network.Endpoint{}
	for _, id := range []string{"vm-a", "vm-b", "vm-c"} {
		if eps[id], err = pool.Attach(ctx, id, egress.Policy{}); err != nil {
			t.Fatal(err)
		}
	}
	if eps["vm-a"].Tap == eps["vm-b"].Tap || eps["vm-b"].Tap == eps["vm-c"].Tap || eps["vm-a"].Tap == eps["vm-c"].Tap {
		t.Errorf("pool TAPs handed out twice: %s %s %s", eps["vm-a"].Tap, eps["vm-b"].Tap, eps["vm-c"].Tap)
	}
	if again, _ := pool.Attach(ctx, "vm-a", egress.Policy{}); again == nil || again.Tap != eps["vm-a"].Tap {
		t.Errorf("re-Attach vm-a = %+v, want tap %s", again, eps["vm-a"].Tap)
	}
	if _, err := pool.Attach(ctx, "vm-d", egress.Policy{}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Attach with the pool empty: %v, want ErrUnavailable", err)
	}
	if l, _ := st.AddressList(ctx, "10.97.0.0/24"); len(l) != 3 {
		t.Errorf("a failed Attach kept its address: %d leases", len(l))
	}
	if err := pool.Detach(ctx, "vm-b"); err != nil {
		t.Fatal(err)
	}
	if d, err := pool.Attach(ctx, "vm-d", egress.Policy{}); err != nil || d.Tap != eps["vm-b"].Tap {
		t.Errorf("after vm-b left, vm-d got %+v, %v; want tap %s", d, err, eps["vm-b"].Tap)
	}
	if err := pool.Prune(ctx, func(id string) bool { return id == "vm-a" }); err != nil {
		t.Fatal(err)
	}
	if l, _ := st.AddressList(ctx, "10.97.0.0/24"); len(l) != 1 || l[0].VMID != "vm-a" {
		t.Errorf("after Prune, leases %v, want only vm-a's", l)
	}
	if after := linkSnapshot(t); after != before {
		t.Errorf("the pool-mode manager changed links:\nbefore %s\nafter  %s", before, after)
	}

	unprepared, _ := network.New(network.Config{Bridge: "nobridge0", TapPool: true, ClaimDir: t.TempDir()}, st)
	if err := unprepared.Setup(ctx); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("pool-mode Setup without a prepared bridge: %v, want ErrFailedPrecondition", err)
	}
	if err := root.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(network.PoolTapName(0)); err == nil {
		t.Error("pool tap survived Teardown")
	}
}

// linkSnapshot describes every link's name, master, alias and flags.
func linkSnapshot(t *testing.T) string {
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, l := range links {
		a := l.Attrs()
		fmt.Fprintf(&b, "%s/%d/%s/%v ", a.Name, a.MasterIndex, a.Alias, a.Flags)
	}
	return b.String()
}

// nftHas checks whether a chain of the aetherium table holds a rule
// containing rule.
func nftHas(t *testing.T, want bool, family, chain, rule string) {
	t.Helper()
	out, _ := exec.Command("nft", "list", "chain", family, "aetherium", chain).CombinedOutput()
	if strings.Contains(string(out), rule) != want {
		t.Errorf("nft chain %s %s holds %q = %v, want %v:\n%s", family, chain, rule, !want, want, out)
	}
}

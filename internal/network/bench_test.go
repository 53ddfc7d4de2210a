package network_test

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/aetherium/aetherium/internal/network"
)

// BenchmarkFirewallChange is one sandbox's firewall change as a create and
// a delete make it (Apply of an internet policy, then Remove) among 500
// other sandboxes' entries, through the Firewall (netlink, one transaction
// each) against the same change as an `nft -f` script (what the Firewall
// ran before: one nft process each, which loads the table's cache of every
// sandbox's chain), alternating, in a network namespace of its own.
// Reported: p50 of each pair and its ratio.
func BenchmarkFirewallChange(b *testing.B) {
	runtime.LockOSThread() // the namespace is this thread's; nft is forked from it
	defer runtime.UnlockOSThread()
	host, err := netns.Get()
	if err != nil {
		b.Fatal(err)
	}
	defer host.Close()
	ns, err := netns.New()
	if err != nil {
		b.Skipf("a network namespace of its own (root): %v", err)
	}
	defer func() { netns.Set(host); ns.Close() }()
	if _, err := exec.LookPath("nft"); err != nil {
		b.Skip("nft not installed")
	}
	ctx := context.Background()
	fw, err := network.NewFirewall(network.FirewallConfig{Table: "aetbench", Interfaces: []string{"aetbench0"}})
	if err != nil {
		b.Fatal(err)
	}
	if err := fw.Setup(ctx); err != nil {
		b.Fatal(err)
	}
	at := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 93, byte(i >> 8), byte(i)}) }
	for i := range 500 {
		if err := fw.Apply(ctx, &network.Rule{ID: fmt.Sprintf("o%03d", i), Addr: at(i)}); err != nil {
			b.Fatal(err)
		}
	}
	var ours, script []time.Duration
	for i := 0; b.Loop(); i++ {
		id, addr := fmt.Sprintf("n%d", i), at(600+i%100)
		t0 := time.Now()
		if err := fw.Apply(ctx, &network.Rule{ID: id, Addr: addr}); err != nil {
			b.Fatal(err)
		}
		if err := fw.Remove(ctx, id); err != nil {
			b.Fatal(err)
		}
		ours = append(ours, time.Since(t0))
		t0 = time.Now()
		nftScript(b, fmt.Sprintf(`add chain inet aetbench sb-%[1]s
flush chain inet aetbench sb-%[1]s
add rule inet aetbench sb-%[1]s ip daddr @dns4 meta l4proto { tcp, udp } th dport 53 accept
add rule inet aetbench sb-%[1]s ip daddr @deny4 drop
add rule inet aetbench sb-%[1]s accept
add element inet aetbench sandboxes { %[2]s : jump sb-%[1]s }
`, id, addr))
		nftScript(b, fmt.Sprintf("delete element inet aetbench sandboxes { %[2]s }\ndelete chain inet aetbench sb-%[1]s\n", id, addr))
		script = append(script, time.Since(t0))
	}
	p50 := func(s []time.Duration) time.Duration { s = slices.Clone(s); slices.Sort(s); return s[len(s)/2] }
	b.ReportMetric(float64(p50(ours).Microseconds())/1000, "netlink-p50-ms")
	b.ReportMetric(float64(p50(script).Microseconds())/1000, "nft-p50-ms")
	b.Logf("apply + remove among 500 sandboxes (n=%d): netlink p50 %v, nft scripts p50 %v, ratio %.3f",
		len(ours), p50(ours), p50(script), float64(p50(ours))/float64(p50(script)))
}

func nftScript(b *testing.B, script string) {
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("nft: %v: %s\n%s", err, out, script)
	}
}

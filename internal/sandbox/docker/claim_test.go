package docker_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/egress"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/sandbox/docker"
	"github.com/aetherium/aetherium/internal/testbin"
)

// dockerField is a container's inspection formatted with a Go template.
func dockerField(t *testing.T, name, format string) string {
	t.Helper()
	out, err := exec.Command("docker", "inspect", "-f", format, name).CombinedOutput()
	if err != nil {
		t.Fatalf("docker inspect %s: %v: %s", name, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestCreateClaimsAddressBeforeStart (issue 13): a sandbox's address comes
// from the lower half of the network (Docker hands out only the upper half)
// and its egress rules are installed for it before its container exists,
// so the guest never runs without them and Create needs no inspection. The
// container got that address; the map points it at the sandbox's chain.
// With the nftables table gone (so the rules cannot go in), Create fails
// and the container never started.
func TestCreateClaimsAddressBeforeStart(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root (nftables)")
	}
	img := testbin.BaseImage(t)
	rt := newRuntime(t, "test")
	ctx := context.Background()
	id := uuid.NewString()
	t.Cleanup(func() { rt.Delete(ctx, id) })
	info, err := rt.Create(ctx, &sandbox.Spec{ID: id, Image: img, Egress: egress.Policy{Mode: egress.Internet}})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := netip.ParseAddr(info.Address)
	if err != nil {
		t.Fatalf("Create gave address %q: %v", info.Address, err)
	}
	subnet := dockerField(t, "aether-"+id, "{{range .NetworkSettings.Networks}}{{.IPAddress}}/{{.IPPrefixLen}}{{end}}")
	lower := netip.PrefixFrom(netip.MustParsePrefix(subnet).Masked().Addr(), netip.MustParsePrefix(subnet).Bits()+1)
	if !lower.Contains(addr) || addr == lower.Addr() || addr == lower.Addr().Next() {
		t.Errorf("address %s is not a host address of the claimed half %s", addr, lower)
	}
	if got := strings.Split(subnet, "/")[0]; got != info.Address {
		t.Errorf("container's address %s, Create said %s", got, info.Address)
	}
	out, err := exec.Command("nft", "list", "map", "inet", rt.Network(), "sandboxes").CombinedOutput()
	if err != nil || !regexp.MustCompile(regexp.QuoteMeta(addr.String())+` (comment "[^"]*" )?: jump sb-`+id).Match(out) {
		t.Errorf("map lacks %s → sb-%s: %v\n%s", addr, id, err, out)
	}

	if out, err := exec.Command("nft", "delete", "table", "inet", rt.Network()).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	id2 := uuid.NewString()
	t.Cleanup(func() { rt.Delete(ctx, id2) })
	if _, err := rt.Create(ctx, &sandbox.Spec{ID: id2, Image: img, Egress: egress.Policy{Mode: egress.Internet}}); err == nil {
		t.Fatal("Create without the firewall's table succeeded")
	}
	out, _ = exec.Command("docker", "inspect", "-f", "{{.State.StartedAt}}", "aether-"+id2).CombinedOutput()
	if s := strings.TrimSpace(string(out)); !strings.Contains(s, "No such") && !strings.HasPrefix(s, "0001-01-01") {
		t.Errorf("a sandbox whose rules could not go in was started (StartedAt %s)", s)
	}
}

// TestClaimsAcrossRuntimes (issue 13): two runtimes of different owners on
// one network and table (two aetherd processes on a host) create sandboxes
// at once; every sandbox gets its own address, the one its container has.
func TestClaimsAcrossRuntimes(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root (nftables)")
	}
	img := testbin.BaseImage(t)
	network := "aet" + uuid.NewString()[:8]
	subnet := netip.MustParsePrefix(fmt.Sprintf("10.203.%d.0/24", os.Getpid()%250))
	t.Cleanup(func() { cleanupNetwork(network) })
	var rts [2]*docker.Runtime
	for i := range rts {
		rt, err := docker.New(docker.Config{AgentPath: testbin.Build(t, "aether-agent"), StateDir: filepath.Join(t.TempDir(), "sandboxes"),
			Owner: "test-" + uuid.NewString()[:8], Network: network, Subnet: subnet})
		if err != nil {
			t.Fatal(err)
		}
		rts[i] = rt
	}
	ctx := context.Background()
	var mu sync.Mutex
	got := map[string]string{}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			rt, id := rts[i%2], uuid.NewString()
			t.Cleanup(func() { rt.Delete(ctx, id) })
			info, err := rt.Create(ctx, &sandbox.Spec{ID: id, Image: img, Egress: egress.Policy{Mode: egress.Internet}})
			if err != nil {
				t.Errorf("create %d: %v", i, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if other, dup := got[info.Address]; dup {
				t.Errorf("sandboxes %s and %s both have %s", other, id, info.Address)
			}
			got[info.Address] = id
		})
	}
	wg.Wait()
	for a, id := range got {
		if have := dockerField(t, "aether-"+id, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"); have != a {
			t.Errorf("sandbox %s: container has %s, Create said %s", id, have, a)
		}
	}
}

// TestClaimsSurviveLostTables (issue 13): a stopped sandbox keeps its
// claimed address in Docker, but its rules go when the nftables tables do
// (a reboot). A runtime starting afresh puts them back before it claims, so
// a new sandbox gets another address and the stopped one starts again
// (without keepClaims the new one takes the address and that start fails
// with "Address already in use").
func TestClaimsSurviveLostTables(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root (nftables)")
	}
	img := testbin.BaseImage(t)
	network := "aet" + uuid.NewString()[:8]
	subnet := netip.MustParsePrefix(fmt.Sprintf("10.204.%d.0/24", os.Getpid()%250))
	t.Cleanup(func() { cleanupNetwork(network) })
	newRT := func() *docker.Runtime {
		rt, err := docker.New(docker.Config{AgentPath: testbin.Build(t, "aether-agent"), StateDir: filepath.Join(t.TempDir(), "sandboxes"),
			Owner: "test-" + uuid.NewString()[:8], Network: network, Subnet: subnet})
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}
	ctx := context.Background()
	old, id := newRT(), uuid.NewString()
	t.Cleanup(func() { old.Delete(ctx, id) })
	first, err := old.Create(ctx, &sandbox.Spec{ID: id, Image: img, Egress: egress.Policy{Mode: egress.Internet}})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("nft", "delete", "table", "inet", network).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	rt, id2 := newRT(), uuid.NewString()
	t.Cleanup(func() { rt.Delete(ctx, id2) })
	second, err := rt.Create(ctx, &sandbox.Spec{ID: id2, Image: img, Egress: egress.Policy{Mode: egress.Internet}})
	if err != nil {
		t.Fatal(err)
	}
	if second.Address == first.Address {
		t.Errorf("a new sandbox got the stopped sandbox's address %s", first.Address)
	}
	if err := old.Start(ctx, id); err != nil {
		t.Errorf("the stopped sandbox (at %s) does not start again: %v", first.Address, err)
	}
}

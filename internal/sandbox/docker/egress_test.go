package docker_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/vishvananda/netns"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/egress"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/testbin"
)

// TestEgress probes, from inside Docker sandboxes on the runtime's own
// network, what each policy reaches. Docker's networking lives in the
// host's namespace, so the test keeps every packet on this machine: a
// policy-routing rule sends everything from the test network's subnet
// (and only it) into a namespace the test makes, which holds stand-ins on
// its loopback for a public address (198.51.100.1), an RFC1918 address
// (10.200.0.1) and the metadata address (169.254.169.254), with a
// listener. The host's own addresses (the bridge's gateway, docker0) get a
// stand-in listener on the host. None of these stand-ins is a real service.
func TestEgress(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root (namespaces, policy routing)")
	}
	img := testbin.BaseImage(t)
	rt := newRuntime(t, "test")
	ctx := context.Background()
	spec := func(p egress.Policy) *sandbox.Spec {
		id := uuid.NewString()
		t.Cleanup(func() { rt.Delete(ctx, id) })
		return &sandbox.Spec{ID: id, Image: img, Egress: p}
	}
	inet, none := spec(egress.Policy{Mode: egress.Internet}), spec(egress.Policy{Mode: egress.None})
	list, other := spec(egress.Policy{Allow: []string{"10.200.0.1/32"}}), spec(egress.Policy{})
	addr := map[string]string{}
	for _, s := range []*sandbox.Spec{inet, none, list, other} {
		info, err := rt.Create(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		addr[s.ID] = info.Address
	}
	if addr[none.ID] != "" {
		t.Errorf("a sandbox with egress none has address %q", addr[none.ID])
	}
	sub := netip.MustParsePrefix(addr[inet.ID] + "/24").Masked()
	gw := sub.Addr().Next().String()

	// The stand-in outside, reached only by the test network's subnet.
	ns := fmt.Sprintf("aetdk-%d", os.Getpid()%100000)
	hostEnd, table := fmt.Sprintf("aetdk%d", os.Getpid()%100000), fmt.Sprint(40000+int(sub.Addr().As4()[2]))
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
	run(t, "ip", "link", "add", hostEnd, "type", "veth", "peer", "name", "eth0", "netns", ns)
	t.Cleanup(func() { exec.Command("ip", "link", "del", hostEnd).Run() })
	run(t, "ip", "addr", "add", "100.127.254.1/30", "dev", hostEnd)
	run(t, "ip", "link", "set", hostEnd, "up")
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	run(t, "ip", "-n", ns, "addr", "add", "100.127.254.2/30", "dev", "eth0")
	run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	for _, a := range []string{"198.51.100.1", "10.200.0.1", "169.254.169.254"} {
		run(t, "ip", "-n", ns, "addr", "add", a+"/32", "dev", "lo")
	}
	run(t, "ip", "route", "add", "default", "via", "100.127.254.2", "table", table)
	run(t, "ip", "rule", "add", "from", sub.String(), "lookup", table, "pref", "100")
	t.Cleanup(func() {
		exec.Command("ip", "rule", "del", "from", sub.String(), "lookup", table, "pref", "100").Run()
		exec.Command("ip", "route", "flush", "table", table).Run()
	})
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	testbin.ListenIn(t, &h, 8080)
	hostPort := testbin.ListenIn(t, nil, 0)

	targets := map[string]string{
		"public":   "198.51.100.1:8080",
		"rfc1918":  "10.200.0.1:8080",
		"metadata": "169.254.169.254:8080",
		"gateway":  fmt.Sprintf("%s:%d", gw, hostPort),
		"docker0":  fmt.Sprintf("172.17.0.1:%d", hostPort),
		"sandbox":  addr[other.ID] + ":1", // refused counts as reached
	}
	probe := func(s *sandbox.Spec) []string {
		t.Helper()
		c, err := sandbox.Connect(ctx, rt, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var out strings.Builder
		if _, err := c.Exec(ctx, &agentproto.ExecRequest{Argv: []string{"bash", "-c", testbin.ProbeScript(targets, 2)}}, agentclient.ExecIO{Stdout: &out, Stderr: &out}); err != nil {
			t.Fatal(err)
		}
		got := strings.Fields(out.String())
		slices.Sort(got)
		return got
	}
	check := func(label string, s *sandbox.Spec, want ...string) {
		t.Helper()
		if got := probe(s); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: sandbox reaches %v, want exactly %v", label, got, want)
		}
	}
	var wg sync.WaitGroup
	for _, c := range []struct {
		label string
		s     *sandbox.Spec
		want  []string
	}{{"internet", inet, []string{"public"}}, {"none", none, nil}, {"allowlist", list, []string{"rfc1918"}}} {
		wg.Add(1)
		go func() { defer wg.Done(); check(c.label, c.s, c.want...) }()
	}
	wg.Wait()

	// Mutation: without the sandbox chain's deny rule, the probe notices.
	out, _ := exec.Command("nft", "-a", "list", "chain", "inet", rt.Network(), "sb-"+inet.ID).CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.Index(line, "# handle "); i > 0 && strings.Contains(line, "@deny4 drop") {
			run(t, "nft", "delete", "rule", "inet", rt.Network(), "sb-"+inet.ID, "handle", strings.TrimSpace(line[i+9:]))
		}
	}
	check("mutant without the deny rule", inet, "metadata", "public", "rfc1918")
	// A restart installs the rules again (for the address it has now),
	// and makes the network again if someone removed it meanwhile (it can
	// go once no running container uses it).
	for _, s := range []*sandbox.Spec{inet, none, list, other} {
		if err := rt.Stop(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "docker", "network", "rm", rt.Network())
	if err := rt.Start(ctx, inet.ID); err != nil {
		t.Fatal(err)
	}
	check("internet after a restart", inet, "public")
	if err := rt.Delete(ctx, inet.ID); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("nft", "list", "table", "inet", rt.Network()).CombinedOutput(); strings.Contains(string(out), inet.ID) {
		t.Errorf("Delete left the sandbox's rules:\n%s", out)
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

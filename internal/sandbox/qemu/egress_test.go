package qemu_test

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/egress"
	"github.com/aetherium/aetherium/internal/network"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/sandbox/qemu"
	"github.com/aetherium/aetherium/internal/store/sqlite"
	"github.com/aetherium/aetherium/internal/testbin"
)

// TestGuestEgress boots QEMU guests (TCG) in the test's own network
// namespace, under the default policy, none and an allowlist, and probes
// from inside each: the outside is testbin.StandInOutside (stand-ins for a
// public address, an RFC1918 address and the metadata address, on the
// loopback of a namespace the test made), the host is a stand-in listener
// in the test's namespace (on the bridge's address and every other), and
// "another sandbox" is the allowlisted guest. It also checks the VMM runs
// as the unprivileged uid under a seccomp filter.
func TestGuestEgress(t *testing.T) {
	t.Parallel()
	needQEMU(t)
	if !testbin.InNetns(t) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	ref := testbin.BaseImage(t)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "aether.db"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	nw, err := network.New(network.Config{Subnet: netip.MustParsePrefix("10.65.0.0/24"), NAT: true, DNS: []string{"192.0.2.53"}}, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := nw.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nw.Teardown(context.Background()) })
	testbin.StandInOutside(t)
	hostPort := testbin.ListenIn(t, nil, 0)

	rt := newRuntime(t, qemu.Config{StateDir: t.TempDir(), Owner: "test-egress", Network: nw})
	policies := []egress.Policy{{}, {Mode: egress.None}, {Allow: []string{testbin.StandInPrivate + "/32"}}}
	ids := make([]string, len(policies))
	var wg sync.WaitGroup
	for i, p := range policies {
		ids[i] = uuid.NewString()
		t.Cleanup(func() { rt.Delete(context.Background(), ids[i]) })
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := rt.Create(ctx, &sandbox.Spec{ID: ids[i], Image: ref, MemoryMB: 256, Egress: p}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	info, err := rt.Inspect(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimPrefix(info.RuntimeID, "qemu:")
	status, _ := os.ReadFile("/proc/" + pid + "/status")
	for _, want := range []string{"Uid:\t65534\t65534\t65534\t65534", "Gid:\t65534\t65534\t65534\t65534", "Seccomp:\t2", "NoNewPrivs:\t1", "CapEff:\t0000000000000000"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("QEMU (pid %s) status lacks %q:\n%s", pid, want, status)
		}
	}
	addrs := make([]string, len(ids))
	for i, id := range ids {
		info, _ := rt.Inspect(ctx, id)
		addrs[i] = info.Address
	}
	targets := map[string]string{
		"public":   fmt.Sprintf("%s:%d", testbin.StandInPublic, testbin.StandInPort),
		"rfc1918":  fmt.Sprintf("%s:%d", testbin.StandInPrivate, testbin.StandInPort),
		"metadata": fmt.Sprintf("%s:%d", testbin.StandInMetadata, testbin.StandInPort),
		"gateway":  fmt.Sprintf("%s:%d", nw.Gateway(), hostPort),
		"host":     fmt.Sprintf("100.127.255.1:%d", hostPort),
	}
	wants := [][]string{{"public"}, nil, {"rfc1918"}}
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := connect(t, ctx, rt, id)
			defer c.Close()
			tg := maps.Clone(targets)
			tg["sandbox"] = addrs[(i+2)%3] + ":1" // another guest; refused counts as reached
			got := strings.Fields(run(t, ctx, c, "bash -c '"+strings.ReplaceAll(testbin.ProbeScript(tg, 15), "'", `'\''`)+"'"))
			slices.Sort(got)
			if strings.Join(got, ",") != strings.Join(wants[i], ",") {
				t.Errorf("guest with egress %q reaches %v, want exactly %v", policies[i], got, wants[i])
			}
		}()
	}
	wg.Wait()
}

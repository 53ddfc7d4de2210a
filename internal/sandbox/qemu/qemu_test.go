package qemu_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/egress"
	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/network"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/sandbox/qemu"
	"github.com/aetherium/aetherium/internal/sandbox/sandboxtest"
	"github.com/aetherium/aetherium/internal/store/sqlite"
	"github.com/aetherium/aetherium/internal/testbin"
)

// needQEMU gates the real-microVM tests, which boot several guests and take
// minutes under TCG: `make test` (and CI) sets AETHER_TEST_QEMU=1; a plain
// `go test ./...` skips them with this reason.
func needQEMU(t testing.TB) {
	t.Helper()
	if os.Getenv("AETHER_TEST_QEMU") != "1" {
		t.Skip("skipping: set AETHER_TEST_QEMU=1 to boot real QEMU microVMs (minutes under TCG)")
	}
	_, err := exec.LookPath("qemu-system-x86_64")
	testbin.Need(t, "qemu-system-x86_64", err)
}

// testAccel is the accelerator every test here names: tcg, which works on
// every host, or AETHER_TEST_QEMU_ACCEL (kvm where KVM boots guests). Never
// auto: its probe waits up to 20 s per runtime where KVM hangs (PVM hosts).
func testAccel() string {
	if a := os.Getenv("AETHER_TEST_QEMU_ACCEL"); a != "" {
		return a
	}
	return "tcg"
}

// newRuntime returns a runtime on cfg (StateDir, Owner, Network,
// AgentChannel) with the test's accelerator and the shared guest cache.
func newRuntime(t testing.TB, cfg qemu.Config) *qemu.Runtime {
	t.Helper()
	b, err := image.NewBuilder("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Guests = image.NewGuestBuilder(b, filepath.Join(os.TempDir(), "aether-guests"), testbin.Build(t, "aether-agent"))
	cfg.Accel = testAccel()
	rt, err := qemu.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// TestConformance runs the runtime suite on real QEMU microVMs booting
// Debian's kernel with the project's rootfs (see testAccel).
func TestConformance(t *testing.T) {
	needQEMU(t)
	ref := testbin.BaseImage(t)
	sandboxtest.Run(t, func(t *testing.T) sandbox.Runtime {
		return newRuntime(t, qemu.Config{StateDir: filepath.Join(t.TempDir(), "vms"), Owner: "test-" + uuid.NewString()[:8]})
	}, sandboxtest.Options{Image: ref, ReadyTimeout: 3 * time.Minute,
		// Under TCG a dozen guests booting at once on two cores can stall
		// some boots; two cases at a time (at most four guests, mostly
		// two) keep the suite honest on a 2-core host.
		Parallel: 2})
}

// TestConsoleLog keeps the serial console of a sandbox for debugging boots;
// the guest runs commands in its memory-limited workload cgroup.
func TestConsoleLog(t *testing.T) {
	t.Parallel()
	needQEMU(t)
	ref := testbin.BaseImage(t)
	rt := newRuntime(t, qemu.Config{StateDir: t.TempDir(), Owner: "test-log"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	id := uuid.NewString()
	t.Cleanup(func() { rt.Delete(context.Background(), id) })
	if _, err := rt.Create(ctx, &sandbox.Spec{ID: id, Image: ref, MemoryMB: 256}); err != nil {
		t.Fatal(err)
	}
	c, err := sandbox.Connect(ctx, rt, id)
	if err != nil {
		t.Fatal(err)
	}
	// Commands run in the guest's workload cgroup, below the VM's memory
	// by the agent's reserve.
	out := run(t, ctx, c, "cat /proc/self/cgroup /sys/fs/cgroup/workload/memory.max")
	c.Close()
	var limit int
	if lines := strings.Fields(out); len(lines) != 2 || lines[0] != "0::/workload" {
		t.Errorf("workload cgroup: %q", out)
	} else if limit, _ = strconv.Atoi(lines[1]); limit < 150<<20 || limit > 256<<20-32<<20 {
		t.Errorf("workload memory.max %d in a 256 MiB VM", limit)
	}
	log, err := rt.ConsoleLog(ctx, id, 1<<20)
	if err != nil || !strings.Contains(string(log), "aether-init: starting agent") {
		t.Errorf("console log %q, %v", log, err)
	}
}

// TestNetworkedGuests boots two microVMs on TAPs of a bridge, in a network
// namespace the test creates: each guest gets its leased address and MAC,
// reaches an HTTP server on the gateway (host access on), and cannot reach
// the other guest (bridge ports are isolated). Deleting a sandbox removes
// its TAP.
func TestNetworkedGuests(t *testing.T) {
	t.Parallel()
	needQEMU(t)
	if !testbin.InNetns(t) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ref := testbin.BaseImage(t)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "aether.db"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	nw, err := network.New(network.Config{Subnet: netip.MustParsePrefix("10.66.0.0/24"), NAT: true, HostAccess: true,
		DNS: []string{"192.0.2.53"}}, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := nw.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", nw.Gateway().String()+":8080")
	if err != nil {
		t.Fatal(err)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello from the host") }))

	rt := newRuntime(t, qemu.Config{StateDir: t.TempDir(), Owner: "test-net", Network: nw})
	ids := []string{uuid.NewString(), uuid.NewString()}
	eps := make([]*network.Endpoint, 2)
	for i, id := range ids {
		t.Cleanup(func() { rt.Delete(context.Background(), id) })
		if _, err := rt.Create(ctx, &sandbox.Spec{ID: id, Image: ref, MemoryMB: 256}); err != nil {
			t.Fatal(err)
		}
		eps[i], _ = nw.Attach(ctx, id, egress.Policy{}) // idempotent: the endpoint Create made
	}
	a := connect(t, ctx, rt, ids[0])
	out := run(t, ctx, a, "cat /sys/class/net/eth0/address; cat /etc/resolv.conf; curl -sS --max-time 20 http://"+nw.Gateway().String()+":8080/")
	for _, want := range []string{eps[0].MAC.String(), "nameserver 192.0.2.53", "hello from the host"} {
		if !strings.Contains(out, want) {
			t.Errorf("guest output %q lacks %q", out, want)
		}
	}
	// The other guest listens on port 9 and answers itself (perl starts
	// slowly under emulation on a loaded host: up to 30 s); the first guest
	// must not get that answer.
	bc := connect(t, ctx, rt, ids[1])
	bAddr := eps[1].Address.Addr().String()
	run(t, ctx, bc, `setsid perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalPort => 9, Listen => 5, ReuseAddr => 1) or die;
		while ($c = $s->accept) { print $c "hi from b\n"; close $c }' >/dev/null 2>&1 &`)
	probe := "for i in $(seq 300); do timeout 5 bash -c 'cat </dev/tcp/" + bAddr + "/9' 2>&1 && break; sleep 0.1; done"
	if out := run(t, ctx, bc, probe); !strings.Contains(out, "hi from b") {
		t.Fatalf("listener in the second guest not answering itself: %q", out)
	}
	if out := run(t, ctx, a, "timeout 5 bash -c 'cat </dev/tcp/"+bAddr+"/9' 2>&1; echo exit=$?"); strings.Contains(out, "hi from b") {
		t.Errorf("a guest reached another guest: %q", out)
	}
	bc.Close()
	if err := rt.Delete(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := net.InterfaceByName(eps[1].Tap); err == nil {
		t.Errorf("tap %s survived Delete", eps[1].Tap)
	}
}

func connect(t *testing.T, ctx context.Context, rt sandbox.Runtime, id string) *agentclient.Client {
	t.Helper()
	c, err := sandbox.Connect(ctx, rt, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func run(t *testing.T, ctx context.Context, c *agentclient.Client, script string) string {
	t.Helper()
	var out strings.Builder
	if _, err := c.Exec(ctx, &agentproto.ExecRequest{Argv: []string{"sh", "-c", script}}, agentclient.ExecIO{Stdout: &out, Stderr: &out}); err != nil {
		t.Fatalf("exec %q: %v", script, err)
	}
	return out.String()
}

// TestVsockAgent reaches the agent over vhost-vsock with a unique guest CID
// per sandbox. It needs /dev/vhost-vsock (modprobe vhost_vsock), which the
// development host lacks; there it skips and says so.
func TestVsockAgent(t *testing.T) {
	t.Parallel()
	needQEMU(t)
	f, err := os.OpenFile("/dev/vhost-vsock", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("skipping: no usable /dev/vhost-vsock (%v); the agent runs over virtio-serial here", err)
	}
	f.Close()
	ref := testbin.BaseImage(t)
	rt := newRuntime(t, qemu.Config{StateDir: t.TempDir(), Owner: "test-vsock", AgentChannel: "vsock"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for range 2 {
		id := uuid.NewString()
		t.Cleanup(func() { rt.Delete(context.Background(), id) })
		if _, err := rt.Create(ctx, &sandbox.Spec{ID: id, Image: ref, MemoryMB: 256}); err != nil {
			t.Fatal(err)
		}
		if out := run(t, ctx, connect(t, ctx, rt, id), "echo over vsock"); out != "over vsock\n" {
			t.Errorf("exec over vsock: %q", out)
		}
	}
}

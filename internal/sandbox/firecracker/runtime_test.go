package firecracker_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/egress"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/network"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/sandbox/firecracker"
	"github.com/aetherium/aetherium/internal/sandbox/sandboxtest"
	"github.com/aetherium/aetherium/internal/store/sqlite"
	"github.com/aetherium/aetherium/internal/testbin"
)

// TestConformance runs the runtime suite on real Firecracker microVMs. It
// needs FIRECRACKER_BIN and a KVM that boots a guest; neither exists on the
// machine the project is developed on, so there it skips and says why.
func TestConformance(t *testing.T) {
	bin := os.Getenv("FIRECRACKER_BIN")
	if bin == "" {
		t.Skip("skipping: FIRECRACKER_BIN is not set (no firecracker binary on this host)")
	}
	ref := testbin.BaseImage(t)
	b, err := image.NewBuilder("")
	if err != nil {
		t.Fatal(err)
	}
	guests := image.NewGuestBuilder(b, filepath.Join(os.TempDir(), "aether-guests"), testbin.Build(t, "aether-agent"))
	probe, err := firecracker.New(firecracker.Config{Binary: bin, Jailer: os.Getenv("JAILER_BIN"), StateDir: t.TempDir(), Owner: "probe", Guests: guests})
	if err != nil {
		t.Fatal(err)
	}
	if err := probe.Probe(context.Background()); err != nil {
		t.Skipf("skipping: KVM cannot boot a Firecracker guest here: %v", err)
	}
	sandboxtest.Run(t, func(t *testing.T) sandbox.Runtime {
		rt, err := firecracker.New(firecracker.Config{Binary: bin, Jailer: os.Getenv("JAILER_BIN"), StateDir: filepath.Join(t.TempDir(), "vms"),
			Owner: "test-" + uuid.NewString()[:8], Guests: guests})
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}, sandboxtest.Options{Image: ref, ReadyTimeout: time.Minute})
}

// stubGuests hands out placeholder kernel, initramfs and rootfs files: the
// fake VMM only checks that they exist at the paths it is given. Committed
// guests are kept by ref.
type stubGuests struct {
	dir       string
	committed map[string]*image.Guest
}

func (g *stubGuests) Build(ctx context.Context, ref string) (*image.Guest, error) {
	if c := g.committed[ref]; c != nil {
		return c, nil
	}
	for _, f := range []string{"vmlinuz", "initrd.gz", "rootfs.ext4", "vmlinux"} {
		os.WriteFile(filepath.Join(g.dir, f), []byte(f), 0o644)
	}
	return &image.Guest{Dir: g.dir, Kernel: filepath.Join(g.dir, "vmlinuz"), Initrd: filepath.Join(g.dir, "initrd.gz"),
		Rootfs: filepath.Join(g.dir, "rootfs.ext4"), KernelVersion: "stub"}, nil
}

func (g *stubGuests) Vmlinux(*image.Guest) (string, error) {
	return filepath.Join(g.dir, "vmlinux"), nil
}

func (g *stubGuests) ProbeBoot() (*image.Guest, error) { return g.Build(context.Background(), "") }

func (g *stubGuests) Commit(ref string, from *image.Guest, rootfs string) (*image.Guest, error) {
	dir := filepath.Join(g.dir, "committed-"+strings.ReplaceAll(ref, "/", "_"))
	os.MkdirAll(dir, 0o755)
	if err := os.Rename(rootfs, filepath.Join(dir, "rootfs.ext4")); err != nil {
		return nil, err
	}
	c := &image.Guest{Dir: dir, Kernel: from.Kernel, Initrd: from.Initrd, Rootfs: filepath.Join(dir, "rootfs.ext4"), KernelVersion: from.KernelVersion}
	if g.committed == nil {
		g.committed = map[string]*image.Guest{}
	}
	g.committed[ref] = c
	return c, nil
}

func (g *stubGuests) Remove(ref string) error { delete(g.committed, ref); return nil }

func (g *stubGuests) Collect(func(string) bool) {}

// TestLifecycleWithFakeVMM drives the runtime against fakevmm, a stand-in
// for the firecracker binary (none can run here): process start and
// adoption across a runtime restart, the API sequence and the files it
// names, fifos, unique CIDs, hybrid-vsock dial to a real agent, pause,
// stop/start and delete.
func TestLifecycleWithFakeVMM(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fake := testbin.Build(t, "internal/sandbox/firecracker/fakevmm")
	// A long state path: sockets are reached beyond the 108-byte limit.
	state := filepath.Join(t.TempDir(), strings.Repeat("long-directory-name-", 5))
	cfg := firecracker.Config{Binary: fake, Unjailed: true, StateDir: state, Owner: "test", Guests: &stubGuests{dir: t.TempDir()}}
	rt, err := firecracker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, b := uuid.NewString(), uuid.NewString()
	t.Cleanup(func() { rt.Delete(context.Background(), a); rt.Delete(context.Background(), b) })
	for _, id := range []string{a, b} {
		if _, err := rt.Create(ctx, &sandbox.Spec{ID: id, Image: "x", MemoryMB: 128}); err != nil {
			t.Fatal(err)
		}
	}
	if out := execOut(t, ctx, rt, a, "echo hello over vsock"); out != "hello over vsock\n" {
		t.Errorf("exec output %q", out)
	}
	if cidA, cidB := metaCID(t, state, a), metaCID(t, state, b); cidA < 3 || cidA == cidB {
		t.Errorf("guest CIDs %d and %d: want distinct and >= 3", cidA, cidB)
	}
	if log, _ := rt.ConsoleLog(ctx, a, 1<<10); !strings.Contains(string(log), "starting agent") {
		t.Errorf("console log %q", log)
	}
	waitFile(t, filepath.Join(state, a, "firecracker.log"), "logger configured")

	// Commit: the disk (as the host sees it) becomes an image new sandboxes
	// start from, each with its own copy.
	os.WriteFile(filepath.Join(state, a, "root", "rootfs.ext4"), []byte("state of a"), 0o644)
	if _, err := rt.Commit(ctx, a, "snap/a"); err != nil {
		t.Fatal(err)
	}
	wantState(t, rt, a, sandbox.StateRunning) // resumed after the copy
	c := uuid.NewString()
	t.Cleanup(func() { rt.Delete(context.Background(), c) })
	if _, err := rt.Create(ctx, &sandbox.Spec{ID: c, Image: "snap/a", MemoryMB: 128}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(state, c, "root", "rootfs.ext4")); string(b) != "state of a" {
		t.Errorf("sandbox from the committed image has disk %q", b)
	}
	if err := rt.Delete(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := rt.Pause(ctx, a); err != nil {
		t.Fatal(err)
	}
	wantState(t, rt, a, sandbox.StatePaused)
	if err := rt.Resume(ctx, a); err != nil {
		t.Fatal(err)
	}
	wantState(t, rt, a, sandbox.StateRunning)

	// A new runtime on the same state (aetherd restarted) finds both VMMs
	// still running.
	rt, err = firecracker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if list, _ := rt.List(ctx); len(list) != 2 || list[0].State != sandbox.StateRunning || list[1].State != sandbox.StateRunning {
		t.Fatalf("after restart List = %v", list)
	}
	if err := rt.Stop(ctx, a); err != nil {
		t.Fatal(err)
	}
	wantState(t, rt, a, sandbox.StateStopped)
	if err := rt.Start(ctx, a); err != nil {
		t.Fatal(err)
	}
	if out := execOut(t, ctx, rt, a, "echo again"); out != "again\n" {
		t.Errorf("exec after restart: %q", out)
	}
	if err := rt.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(state, a)); !os.IsNotExist(err) {
		t.Errorf("sandbox directory survived Delete: %v", err)
	}
	if _, err := rt.Inspect(ctx, a); err == nil {
		t.Error("Inspect after Delete succeeded")
	}
}

func TestNewWithoutBinary(t *testing.T) {
	_, err := firecracker.New(firecracker.Config{Binary: "/nonexistent/firecracker", StateDir: t.TempDir(), Owner: "x", Guests: &stubGuests{}})
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("New without a binary: %v", err)
	}
}

func execOut(t *testing.T, ctx context.Context, rt sandbox.Runtime, id, script string) string {
	t.Helper()
	c, err := sandbox.Connect(ctx, rt, id)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out strings.Builder
	if _, err := c.Exec(ctx, &agentproto.ExecRequest{Argv: []string{"sh", "-c", script}}, agentclient.ExecIO{Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func metaCID(t *testing.T, state, id string) int {
	b, err := os.ReadFile(filepath.Join(state, id, "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		CID int `json:"cid"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m.CID
}

func wantState(t *testing.T, rt sandbox.Runtime, id, want string) {
	t.Helper()
	info, err := rt.Inspect(context.Background(), id)
	if err != nil || info.State != want {
		t.Fatalf("Inspect = %+v, %v; want state %s", info, err, want)
	}
}

func waitFile(t *testing.T, path, want string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), want) {
			return
		}
	}
	b, _ := os.ReadFile(path)
	t.Errorf("%s = %q, want it to contain %q", path, b, want)
}

// TestNetworkWithFakeVMM, in a network namespace the test creates: a
// sandbox gets a TAP on the bridge, Firecracker is given that TAP and the
// address's MAC, the guest its address on the kernel command line, and
// Delete removes the TAP and frees the address.
func TestNetworkWithFakeVMM(t *testing.T) {
	if !testbin.InNetns(t) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "aether.db"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	nw, err := network.New(network.Config{Subnet: netip.MustParsePrefix("10.55.0.0/24"), DNS: []string{}}, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := nw.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	rt, err := firecracker.New(firecracker.Config{Binary: testbin.Build(t, "internal/sandbox/firecracker/fakevmm"), Unjailed: true,
		StateDir: state, Owner: "test", Guests: &stubGuests{dir: t.TempDir()}, Network: nw})
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	info, err := rt.Create(ctx, &sandbox.Spec{ID: id, Image: "x"})
	if err != nil {
		t.Fatal(err)
	}
	ep, _ := nw.Attach(ctx, id, egress.Policy{}) // idempotent: the one Create made
	if info.Address != ep.Address.Addr().String() || info.Address != "10.55.0.2" {
		t.Errorf("Info.Address = %q, endpoint %s", info.Address, ep.Address)
	}
	raw, err := os.ReadFile(filepath.Join(state, id, "root", "fakevmm-config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]map[string]any
	json.Unmarshal(raw, &cfg)
	nic, boot := cfg["/network-interfaces/eth0"], cfg["/boot-source"]
	if nic["host_dev_name"] != ep.Tap || nic["guest_mac"] != ep.MAC.String() {
		t.Errorf("NIC given to Firecracker: %v, want tap %s mac %s", nic, ep.Tap, ep.MAC)
	}
	if args, _ := boot["boot_args"].(string); !strings.Contains(args, "aether.ip=10.55.0.2/24 aether.gw=10.55.0.1") {
		t.Errorf("boot args %q lack the guest address", args)
	}
	if err := rt.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/sys/class/net/" + ep.Tap); err == nil {
		t.Errorf("tap %s survived Delete", ep.Tap)
	}
	if l, _ := st.AddressList(ctx, "10.55.0.0/24"); len(l) != 0 {
		t.Errorf("address leases after Delete: %v", l)
	}
}

// TestJailedWithFakeVMM: with a jailer beside the firecracker binary, the
// runtime jails by default. fakevmm, run as "jailer", chroots and drops to
// the jail's uid like the real one (the base 100000 plus the sandbox's
// guest CID, 3 for the first), so this checks what the jail needs: files
// hard-linked into the chroot, the disk and fifos owned by the jail's uid,
// every path relative to the chroot, a relaunch reusing the chroot, and
// Delete removing the jail.
func TestJailedWithFakeVMM(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: the jail needs root (chroot, setuid)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fake := testbin.Build(t, "internal/sandbox/firecracker/fakevmm")
	bin := t.TempDir()
	for _, name := range []string{"firecracker-fake", "jailer"} {
		if out, err := exec.Command("cp", fake, filepath.Join(bin, name)).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v: %s", err, out)
		}
	}
	state := t.TempDir()
	os.Chmod(state, 0o755) // the jail's uid must traverse it
	rt, err := firecracker.New(firecracker.Config{Binary: filepath.Join(bin, "firecracker-fake"), StateDir: state, Owner: "test",
		Guests: &stubGuests{dir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	t.Cleanup(func() { rt.Delete(context.Background(), id) })
	if _, err := rt.Create(ctx, &sandbox.Spec{ID: id, Image: "x"}); err != nil {
		t.Fatal(err)
	}
	jail := filepath.Join(state, "jail", "firecracker-fake", id, "root")
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(jail, "rootfs.ext4"), &st); err != nil || st.Uid != 100003 {
		t.Errorf("jailed disk: uid %d, %v; want owned by 100003", st.Uid, err)
	}
	pid := firstLine(t, filepath.Join(state, id, "pid"))
	if status, _ := os.ReadFile("/proc/" + pid + "/status"); !strings.Contains(string(status), "Uid:\t100003") {
		t.Errorf("the VMM does not run as uid 100003:\n%s", status)
	}
	for range 2 { // a relaunch reuses the chroot
		c, err := sandbox.Connect(ctx, rt, id)
		if err != nil {
			t.Fatalf("agent in the jail: %v", err)
		}
		c.Close()
		if err := rt.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := rt.Start(ctx, id); err != nil {
			t.Fatalf("relaunch in the existing jail: %v", err)
		}
	}
	if err := rt.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(jail)); !os.IsNotExist(err) {
		t.Errorf("jail survived Delete: %v", err)
	}
}

func firstLine(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestRefusesUnjailed: without a jailer, New fails and names the explicit
// switch; with firecracker.unjailed it runs unconfined.
func TestRefusesUnjailed(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("jailer"); err == nil {
		t.Skip("a jailer is in PATH")
	}
	fake := testbin.Build(t, "internal/sandbox/firecracker/fakevmm")
	bin := filepath.Join(t.TempDir(), "firecracker")
	if out, err := exec.Command("cp", fake, bin).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	cfg := firecracker.Config{Binary: bin, StateDir: t.TempDir(), Owner: "test", Guests: &stubGuests{dir: t.TempDir()}}
	if _, err := firecracker.New(cfg); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "unjailed") {
		t.Errorf("New without a jailer: %v, want a failed precondition naming firecracker.unjailed", err)
	}
	cfg.Unjailed = true
	if _, err := firecracker.New(cfg); err != nil {
		t.Errorf("New with Unjailed: %v", err)
	}
}

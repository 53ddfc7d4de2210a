package microvm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/network"
	"github.com/aetherium/aetherium/internal/sandbox"
)

// fakeVMM is a VMM whose "VMM process" is a shell named after the sandbox
// that ignores SIGTERM, as a hung VMM would. PrepareImpl and LaunchImpl,
// when set, run first and their errors are returned.
type fakeVMM struct {
	dirs        *Dirs
	PrepareImpl func(m *Meta) error
	LaunchImpl  func(m *Meta) error

	mu               sync.Mutex
	stopped, removed int
}

func (f *fakeVMM) Prepare(ctx context.Context, m *Meta, guest *image.Guest) error {
	if f.PrepareImpl != nil {
		return f.PrepareImpl(m)
	}
	return nil
}

func (f *fakeVMM) Launch(ctx context.Context, m *Meta, ep *network.Endpoint) error {
	if f.LaunchImpl != nil {
		if err := f.LaunchImpl(m); err != nil {
			return err
		}
	}
	cmd := exec.Command("sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done", m.ID) // $0 names the sandbox
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	if _, err := out.Read(make([]byte, 6)); err != nil { // SIGTERM is ignored from here on
		return err
	}
	return os.WriteFile(filepath.Join(f.dirs.Dir(m.ID), "pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
}

func (f *fakeVMM) Stopped(context.Context, *Meta) { f.mu.Lock(); f.stopped++; f.mu.Unlock() }

func (f *fakeVMM) Remove(context.Context, *Meta) error {
	f.mu.Lock()
	f.removed++
	f.mu.Unlock()
	return nil
}

func (f *fakeVMM) Dial(context.Context, *Meta) (net.Conn, error) { return nil, errors.New("no agent") }

func (f *fakeVMM) Paused(context.Context, *Meta) bool { return false }

func (f *fakeVMM) SetPaused(context.Context, *Meta, bool) error { return nil }

func (f *fakeVMM) ExportDisk(ctx context.Context, m *Meta, dst string) error {
	return os.WriteFile(dst, []byte("disk"), 0o644)
}

// fakeGuests builds guests under dir/<ref> without files, and records for
// each Collect whether dir/tpl counted as in use.
type fakeGuests struct {
	dir string

	mu        sync.Mutex
	collected []bool
}

func (g *fakeGuests) Build(ctx context.Context, ref string) (*image.Guest, error) {
	d := filepath.Join(g.dir, ref)
	return &image.Guest{Dir: d, Kernel: filepath.Join(d, "vmlinuz"), Initrd: filepath.Join(d, "initrd.gz"),
		Rootfs: filepath.Join(d, "rootfs.ext4")}, nil
}

func (g *fakeGuests) Commit(ref string, from *image.Guest, rootfs string) (*image.Guest, error) {
	return g.Build(context.Background(), ref)
}

func (g *fakeGuests) Remove(string) error { return nil }

func (g *fakeGuests) Collect(inUse func(dir string) bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.collected = append(g.collected, inUse(filepath.Join(g.dir, "tpl")))
}

// newTestMachine returns a Machine on the fakes; cfg gives Vsock and
// StopGrace. Every VMM process is killed when the test ends.
func newTestMachine(t *testing.T, cfg Config) (*Machine, *fakeVMM, *fakeGuests) {
	t.Helper()
	dirs := &Dirs{Root: t.TempDir(), Owner: "me"}
	vmm, guests := &fakeVMM{dirs: dirs}, &fakeGuests{dir: t.TempDir()}
	cfg.Name, cfg.Dirs, cfg.Guests, cfg.VMM = "fake", dirs, guests, vmm
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		list, _ := m.List(context.Background())
		for _, info := range list {
			if pid := dirs.PID(info.ID); pid != 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return m, vmm, guests
}

func mustCreate(t *testing.T, m *Machine, image string) string {
	t.Helper()
	id := uuid.NewString()
	info, err := m.Create(context.Background(), &sandbox.Spec{ID: id, Image: image})
	if err != nil || info.State != sandbox.StateRunning {
		t.Fatalf("Create = %+v, %v; want running", info, err)
	}
	return id
}

// TestStopHonorsContext guards the bug where QEMU's Stop slept through its
// 5 s grace without looking at its context: with a VMM that ignores SIGTERM
// and a context that ends first, Stop returns the context's error at once.
func TestStopHonorsContext(t *testing.T) {
	t.Parallel()
	m, _, _ := newTestMachine(t, Config{StopGrace: time.Minute})
	id := mustCreate(t, m, "img")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := m.Stop(ctx, id); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("Stop = %v after %s; want the context's error within its 200ms", err, time.Since(start))
	}
}

// TestStopKillsAfterGrace: a VMM that ignores SIGTERM is killed once the
// grace has passed; Stop releases what the VMM held and is idempotent.
func TestStopKillsAfterGrace(t *testing.T) {
	t.Parallel()
	m, vmm, _ := newTestMachine(t, Config{StopGrace: 100 * time.Millisecond})
	id := mustCreate(t, m, "img")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 {
		if err := m.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if info, err := m.Inspect(ctx, id); err != nil || info.State != sandbox.StateStopped || info.RuntimeID != "fake:0" {
		t.Errorf("after Stop: %+v, %v", info, err)
	}
	if vmm.stopped != 2 {
		t.Errorf("Stopped called %d times for 2 Stops", vmm.stopped)
	}
}

// TestDeleteCollectsGuests guards the drift where only QEMU's Delete
// collected removed committed guests and Firecracker's never did: every
// Delete collects, and a guest counts as in use while a sandbox made from
// it remains.
func TestDeleteCollectsGuests(t *testing.T) {
	t.Parallel()
	m, _, guests := newTestMachine(t, Config{})
	a, b := mustCreate(t, m, "tpl"), mustCreate(t, m, "tpl")
	ctx := context.Background()
	if err := m.RemoveImage(ctx, "tpl"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{a, b} {
		if err := m.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if want := []bool{true, true, false}; !slices.Equal(guests.collected, want) {
		t.Errorf("guest in use at each Collect = %v, want %v (RemoveImage, Delete a, Delete b)", guests.collected, want)
	}
}

// TestGuestCIDs: sandboxes with a vsock get distinct CIDs from 3 up, a CID
// the host refuses is skipped, and a restart keeps a CID that is still free.
func TestGuestCIDs(t *testing.T) {
	t.Parallel()
	m, vmm, _ := newTestMachine(t, Config{Vsock: true})
	vmm.LaunchImpl = func(meta *Meta) error {
		if meta.CID == 3 {
			return fmt.Errorf("%w: held by another VMM", ErrCIDTaken)
		}
		return nil
	}
	a, b := mustCreate(t, m, "img"), mustCreate(t, m, "img")
	cid := func(id string) uint32 {
		meta, err := m.dirs.Read(id)
		if err != nil {
			t.Fatal(err)
		}
		return meta.CID
	}
	if cid(a) != 4 || cid(b) != 5 {
		t.Errorf("CIDs %d and %d; want 4 and 5 (3 is refused)", cid(a), cid(b))
	}
	ctx := context.Background()
	if err := m.Stop(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, a); err != nil {
		t.Fatal(err)
	}
	if cid(a) != 4 {
		t.Errorf("CID after restart %d, want 4", cid(a))
	}
}

// TestCreateFailureLeavesNothing: when the VMM cannot prepare a sandbox,
// what was made for it goes, and the ID is free.
func TestCreateFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	m, vmm, _ := newTestMachine(t, Config{})
	vmm.PrepareImpl = func(*Meta) error { return errors.New("no disk") }
	id := uuid.NewString()
	if _, err := m.Create(context.Background(), &sandbox.Spec{ID: id, Image: "img"}); err == nil {
		t.Fatal("Create succeeded without a disk")
	}
	if _, err := os.Stat(m.dirs.Dir(id)); !os.IsNotExist(err) || vmm.removed != 1 {
		t.Errorf("after a failed Create: directory %v, VMM Remove called %d times", err, vmm.removed)
	}
}

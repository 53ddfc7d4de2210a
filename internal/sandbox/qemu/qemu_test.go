package qemu_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/sandbox/qemu"
	"github.com/aetherium/aetherium/internal/sandbox/sandboxtest"
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

// TestConformance runs the runtime suite on real QEMU microVMs booting
// Debian's kernel with the project's rootfs (TCG here, KVM where it works).
func TestConformance(t *testing.T) {
	needQEMU(t)
	ref := testbin.BaseImage(t)
	b, err := image.NewBuilder(filepath.Join(os.TempDir(), "aether-image-build"), "")
	if err != nil {
		t.Fatal(err)
	}
	guests := image.NewGuestBuilder(b, filepath.Join(os.TempDir(), "aether-guests"), testbin.Build(t, "aether-agent"))
	sandboxtest.Run(t, func(t *testing.T) sandbox.Runtime {
		rt, err := qemu.New(qemu.Config{StateDir: filepath.Join(t.TempDir(), "vms"), Owner: "test-" + uuid.NewString()[:8], Guests: guests})
		testbin.Need(t, "qemu", err)
		return rt
	}, sandboxtest.Options{Image: ref, ReadyTimeout: 3 * time.Minute,
		// Under TCG a dozen guests booting at once on two cores can stall
		// some boots; one machine at a time keeps the suite honest here.
		Sequential: true})
}

// TestConsoleLog keeps the serial console of a sandbox for debugging boots.
func TestConsoleLog(t *testing.T) {
	t.Parallel()
	needQEMU(t)
	ref := testbin.BaseImage(t)
	b, _ := image.NewBuilder(filepath.Join(os.TempDir(), "aether-image-build"), "")
	rt, err := qemu.New(qemu.Config{StateDir: t.TempDir(), Owner: "test-log",
		Guests: image.NewGuestBuilder(b, filepath.Join(os.TempDir(), "aether-guests"), testbin.Build(t, "aether-agent"))})
	if err != nil {
		t.Fatal(err)
	}
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
	c.Close()
	log, err := rt.ConsoleLog(ctx, id, 1<<20)
	if err != nil || !strings.Contains(string(log), "aether-init: starting agent") {
		t.Errorf("console log %q, %v", log, err)
	}
}

package qemu_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/sandbox/qemu"
	"github.com/aetherium/aetherium/internal/testbin"
)

// BenchmarkBoot compares create → agent ready (handshake) through the
// runtime with the same kernel and QEMU machine booting a trivial /init
// (the initramfs's probe path: print a marker, power off), in the same
// iterations. Both use the accelerator the runtime picks (TCG here).
func BenchmarkBoot(b *testing.B) {
	needQEMU(b)
	ref := testbin.BaseImage(b)
	ib, _ := image.NewBuilder(filepath.Join(os.TempDir(), "aether-image-build"), "")
	guests := image.NewGuestBuilder(ib, filepath.Join(os.TempDir(), "aether-guests"), testbin.Build(b, "aether-agent"))
	guest, err := guests.Build(context.Background(), ref)
	if err != nil {
		b.Fatal(err)
	}
	rt, err := qemu.New(qemu.Config{StateDir: b.TempDir(), Owner: "bench", Guests: guests, Accel: "tcg"})
	if err != nil {
		b.Fatal(err)
	}
	var ready, bare []time.Duration
	for i := 0; i < b.N; i++ {
		id := uuid.NewString()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		if _, err := rt.Create(ctx, &sandbox.Spec{ID: id, Image: ref, MemoryMB: 512}); err != nil {
			b.Fatal(err)
		}
		c, err := sandbox.Connect(ctx, rt, id)
		if err != nil {
			b.Fatal(err)
		}
		ready = append(ready, time.Since(start))
		c.Close()
		rt.Delete(context.Background(), id)
		cancel()

		start = time.Now()
		// The runtime's TCG machine (q35), same kernel and initramfs.
		cmd := exec.Command("qemu-system-x86_64", "-M", "q35,accel=tcg", "-cpu", "max", "-m", "512", "-smp", "1",
			"-nodefaults", "-no-user-config", "-nographic", "-display", "none", "-no-reboot",
			"-kernel", guest.Kernel, "-initrd", guest.Initrd, "-append", "console=ttyS0 panic=-1 aether.probe=1", "-serial", "stdio")
		out, _ := cmd.StdoutPipe()
		cmd.Start()
		sc := bufio.NewScanner(out)
		for sc.Scan() && !strings.Contains(sc.Text(), "AETHER-PROBE-OK") {
		}
		bare = append(bare, time.Since(start))
		cmd.Process.Kill()
		cmd.Wait()
	}
	p50 := func(s []time.Duration) time.Duration { c := slices.Clone(s); slices.Sort(c); return c[len(c)/2] }
	b.ReportMetric(p50(ready).Seconds()*1000, "ready-p50-ms")
	b.ReportMetric(p50(bare).Seconds()*1000, "bare-p50-ms")
	b.ReportMetric(float64(p50(ready))/float64(p50(bare)), "ratio")
	b.Logf("boot (TCG): create → agent ready p50 %s vs bare kernel + trivial /init p50 %s, ratio %.2f (n=%d)",
		p50(ready).Round(time.Millisecond), p50(bare).Round(time.Millisecond), float64(p50(ready))/float64(p50(bare)), b.N)
}

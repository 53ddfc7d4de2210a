package qemu_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
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
	ib, _ := image.NewBuilder("")
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

// BenchmarkIdleMemory measures what an idle microVM costs the host beyond
// the guest RAM it actually uses: QEMU's resident set minus the resident
// part of the guest-RAM mapping (found in smaps by its size). b.N microVMs
// run at once, idle for 10 s after their agents answer.
func BenchmarkIdleMemory(b *testing.B) {
	needQEMU(b)
	ref := testbin.BaseImage(b)
	state := b.TempDir()
	rt := newRuntime(b, qemu.Config{StateDir: state, Owner: "bench"})
	const memMB = 512
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var ids []string
	for i := 0; i < b.N; i++ {
		id := uuid.NewString()
		ids = append(ids, id)
		b.Cleanup(func() { rt.Delete(context.Background(), id) })
		if _, err := rt.Create(ctx, &sandbox.Spec{ID: id, Image: ref, MemoryMB: memMB}); err != nil {
			b.Fatal(err)
		}
		c, err := sandbox.Connect(ctx, rt, id)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	time.Sleep(10 * time.Second)
	var m qemuMem
	for _, id := range ids {
		pid, _ := os.ReadFile(filepath.Join(state, id, "pid"))
		one, err := readQEMUMem(strings.TrimSpace(string(pid)), memMB<<10)
		if err != nil {
			b.Fatal(err)
		}
		m.rss, m.ram, m.tcgCache = m.rss+one.rss, m.ram+one.ram, m.tcgCache+one.tcgCache
	}
	mib := func(kb int) float64 { return float64(kb) / 1024 / float64(len(ids)) }
	b.ReportMetric(mib(m.rss-m.ram), "overhead-MiB/vm")
	b.ReportMetric(mib(m.rss-m.ram-m.tcgCache), "overhead-without-TCG-cache-MiB/vm")
	b.ReportMetric(mib(m.ram), "guest-touched-MiB/vm")
	b.Logf("idle microVM (%d MiB, %s): QEMU RSS %.1f MiB = guest RAM touched %.1f MiB + overhead %.1f MiB, of which TCG's translation cache %.1f MiB (mean of %d)",
		memMB, rt.Accel(ctx), mib(m.rss), mib(m.ram), mib(m.rss-m.ram), mib(m.tcgCache), len(ids))
}

// qemuMem is a QEMU process's resident memory in KiB: all of it, the
// guest-RAM mapping's share, and the TCG translation cache's (a 1 GiB
// anonymous mapping under TCG, absent with KVM).
type qemuMem struct{ rss, ram, tcgCache int }

// readQEMUMem reads /proc/PID/smaps; the guest RAM is the mapping of
// exactly ramKB.
func readQEMUMem(pid string, ramKB int) (qemuMem, error) {
	var m qemuMem
	f, err := os.Open("/proc/" + pid + "/smaps")
	if err != nil {
		return m, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	size := 0
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "Size:":
			size, _ = strconv.Atoi(fields[1])
		case "Rss:":
			kb, _ := strconv.Atoi(fields[1])
			m.rss += kb
			switch {
			case size == ramKB:
				m.ram += kb
			case size > (1<<20)-64 && size <= 1<<20:
				m.tcgCache += kb
			}
		}
	}
	if m.ram == 0 {
		return m, fmt.Errorf("no %d KiB guest RAM mapping in /proc/%s/smaps", ramKB, pid)
	}
	return m, sc.Err()
}

package e2e_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkStartupWithHangingKVM measures how long a fresh aetherd (new data
// dir, no probe verdict) takes to answer /health with runtime auto on a host
// whose KVM probe hangs (the hanging stand-in QEMU of startup_test.go), next
// to the same start with --runtime docker (no probe at all), in the same
// iterations. The goal is under 1 s, and no slower than docker alone.
func BenchmarkStartupWithHangingKVM(b *testing.B) {
	bin := b.TempDir()
	qemu := filepath.Join(bin, "qemu-system-x86_64")
	if err := os.WriteFile(qemu, []byte(hangingQEMU), 0o755); err != nil {
		b.Fatal(err)
	}
	cfg := writeConfig(b, "probe_timeout: 2s\nqemu:\n  binary: "+qemu+"\n")
	e := newEnv(b)
	var ours, raw samples
	for i := 0; i < b.N; i++ {
		for _, run := range []struct {
			args []string
			into *samples
		}{
			{[]string{"--runtime", "auto", "--config", cfg}, &ours},
			{[]string{"--runtime", "docker"}, &raw},
		} {
			p := e.add(run.args...)
			e.connect(p)
			start := time.Now()
			p.start()
			*run.into = append(*run.into, time.Since(start))
			p.stop()
		}
	}
	report(b, "fresh start to healthy (auto, hanging KVM probe vs docker)", ours, raw)
}

package hostprobe_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/hostprobe"
)

func TestRunVerdicts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		probe   func(context.Context) error
		wantOK  bool
		wantWhy string
	}{
		{"works", func(context.Context) error { return nil }, true, ""},
		{"fails at once", func(context.Context) error { return errors.New("KVM guest failed: assertion") }, false, "KVM guest failed: assertion"},
		// A PVM-only /dev/kvm makes QEMU hang: the probe must end at its
		// timeout with a verdict that says so.
		{"hangs", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, false, "did not finish within 50ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "probes.json")
			v, err := hostprobe.NewCache(path).Run(context.Background(), "kvm", "k1", 50*time.Millisecond, tt.probe)
			if err != nil || v.OK != tt.wantOK || v.Why != tt.wantWhy || v.Key != "k1" {
				t.Fatalf("Run = %+v, %v; want ok=%v why=%q", v, err, tt.wantOK, tt.wantWhy)
			}
			// A new process (a new Cache on the same file) knows it without probing.
			got, ok := hostprobe.NewCache(path).Get("kvm", "k1")
			if !ok || got.OK != tt.wantOK || got.Why != tt.wantWhy {
				t.Fatalf("Get after restart = %+v, %v; want the same verdict", got, ok)
			}
		})
	}
}

func TestRunProbesOncePerKey(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "probes.json")
	var calls atomic.Int32
	probe := func(context.Context) error { calls.Add(1); return nil }
	c := hostprobe.NewCache(path)
	for range 3 {
		if _, err := c.Run(context.Background(), "kvm", "k1", time.Second, probe); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := hostprobe.NewCache(path).Run(context.Background(), "kvm", "k1", time.Second, probe); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("probe ran %d times for one key; want 1", n)
	}
	// A changed host (another kernel or QEMU) is probed again.
	if _, err := c.Run(context.Background(), "kvm", "k2", time.Second, probe); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get("kvm", "k1"); ok {
		t.Fatal("the old key's verdict still answers for it after the host changed")
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("probe ran %d times for two keys; want 2", n)
	}
}

// TestRunCancelledKeepsNothing guards against a shutdown during a probe being
// recorded as "KVM does not work here".
func TestRunCancelledKeepsNothing(t *testing.T) {
	t.Parallel()
	c := hostprobe.NewCache(filepath.Join(t.TempDir(), "probes.json"))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	_, err := c.Run(ctx, "kvm", "k1", time.Minute, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel: err %v; want context.Canceled", err)
	}
	if v, ok := c.Get("kvm", "k1"); ok {
		t.Fatalf("a cancelled probe left verdict %+v", v)
	}
}

func TestRunSharesAProbeInFlight(t *testing.T) {
	t.Parallel()
	c := hostprobe.NewCache(filepath.Join(t.TempDir(), "probes.json"))
	var calls atomic.Int32
	release := make(chan struct{})
	probe := func(context.Context) error { calls.Add(1); <-release; return nil }
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if v, err := c.Run(context.Background(), "kvm", "k1", time.Minute, probe); err != nil || !v.OK {
				t.Errorf("Run = %+v, %v", v, err)
			}
		})
	}
	for !c.Running("kvm") {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("4 concurrent callers ran the probe %d times; want 1", n)
	}
}

func TestKeyParts(t *testing.T) {
	t.Parallel()
	if k := hostprobe.Kernel(); k == "" || strings.ContainsRune(k, 0) {
		t.Fatalf("Kernel() = %q", k)
	}
	if got := hostprobe.File("/nonexistent/qemu"); got != "/nonexistent/qemu:missing" {
		t.Fatalf("File(missing) = %q", got)
	}
	if got := hostprobe.Device("/dev/null"); got != "/dev/null:1:3" {
		t.Fatalf("Device(/dev/null) = %q; want major 1 minor 3", got)
	}
}

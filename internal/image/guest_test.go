package image_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/testbin"
)

// TestGuestBuildIsCached builds a real guest (Debian kernel, initramfs,
// ext4 rootfs from the base image) into a fresh cache, then again: the
// second build does no work — same files, untouched.
func TestGuestBuildIsCached(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testbin.Need(t, "busybox-static", err)
	}
	ref := testbin.BaseImage(t)
	b, err := image.NewBuilder("")
	if err != nil {
		t.Fatal(err)
	}
	g := image.NewGuestBuilder(b, t.TempDir(), testbin.Build(t, "aether-agent"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	first, err := g.Build(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	before := map[string]time.Time{}
	for _, f := range []string{first.Kernel, first.Initrd, first.Rootfs} {
		st, err := os.Stat(f)
		if err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
		before[f] = st.ModTime()
	}
	start := time.Now()
	second, err := g.Build(ctx, ref)
	if err != nil || *second != *first {
		t.Fatalf("second build = %+v, %v; want %+v", second, err, first)
	}
	for f, mt := range before {
		if st, _ := os.Stat(f); !st.ModTime().Equal(mt) {
			t.Errorf("%s was written again", f)
		}
	}
	t.Logf("second build (cached) took %s", time.Since(start))
}

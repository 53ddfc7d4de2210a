package image

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestCloneDiskKeepsHoles: a 1 GiB file with 8 KiB of data clones to the same
// bytes without allocating the holes.
func TestCloneDiskKeepsHoles(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src.img"), filepath.Join(dir, "dst.img")
	f, _ := os.Create(src)
	f.Truncate(1 << 30)
	f.WriteAt(bytes.Repeat([]byte("a"), 4096), 0)
	f.WriteAt(bytes.Repeat([]byte("z"), 4096), 512<<20)
	f.Close()
	if err := CloneDisk(context.Background(), src, dst); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dst, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != 1<<30 || st.Blocks*512 > 1<<20 {
		t.Errorf("clone: size %d, %d bytes allocated; want 1 GiB with under 1 MiB allocated", st.Size, st.Blocks*512)
	}
	d, _ := os.Open(dst)
	defer d.Close()
	buf := make([]byte, 4096)
	d.ReadAt(buf, 512<<20)
	if !bytes.Equal(buf, bytes.Repeat([]byte("z"), 4096)) {
		t.Error("clone lost data at 512 MiB")
	}
	// Writing the clone leaves the source alone.
	d2, _ := os.OpenFile(dst, os.O_WRONLY, 0)
	d2.WriteAt([]byte("changed"), 0)
	d2.Close()
	sf, _ := os.Open(src)
	defer sf.Close()
	sf.ReadAt(buf[:1], 0)
	if buf[0] != 'a' {
		t.Error("writing the clone changed the source")
	}
}

func TestCloneDiskMissingSource(t *testing.T) {
	if err := CloneDisk(context.Background(), "/nonexistent", filepath.Join(t.TempDir(), "x")); err == nil {
		t.Error("cloning a missing file succeeded")
	}
}

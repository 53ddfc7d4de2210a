package image

import (
	"debug/elf"
	"path/filepath"
	"testing"
)

// TestExtractVmlinux extracts the ELF kernel from the host's real Debian
// bzImage (linux-image-amd64), as the Firecracker runtime does.
func TestExtractVmlinux(t *testing.T) {
	g := &GuestBuilder{boot: "/boot", modules: "/lib/modules"}
	kv, err := g.kernelVersion()
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	dst := filepath.Join(t.TempDir(), "vmlinux")
	if err := ExtractVmlinux(filepath.Join("/boot", "vmlinuz-"+kv), dst); err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC || f.Entry == 0 {
		t.Errorf("vmlinux: machine %v type %v entry %#x", f.Machine, f.Type, f.Entry)
	}
	if f.Section(".text") == nil {
		t.Error("vmlinux has no .text section")
	}
}

func TestExtractVmlinuxRejectsNonKernels(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "vmlinux")
	if err := ExtractVmlinux("/bin/sh", dst); err == nil {
		t.Error("ExtractVmlinux(/bin/sh) succeeded")
	}
}

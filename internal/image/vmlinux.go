package image

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
)

// ExtractVmlinux writes the uncompressed ELF kernel inside a bzImage (what
// Debian's /boot/vmlinuz is) to dst: Firecracker boots only ELF kernels.
// The setup header says where the compressed payload is (boot protocol
// 2.08+); its magic says how it is compressed. Debian uses xz, whose x86
// BCJ filter only xz(1) decodes, so xz and zstd payloads go through the
// xz-utils and zstd commands, gzip through the standard library.
func ExtractVmlinux(bzImage, dst string) error {
	b, err := os.ReadFile(bzImage)
	if err != nil {
		return err
	}
	payload, err := bzPayload(b)
	if err != nil {
		return fmt.Errorf("%s: %w", bzImage, err)
	}
	kernel, err := decompress(payload)
	if err != nil {
		return fmt.Errorf("%s: decompress kernel: %w", bzImage, err)
	}
	f, err := elf.NewFile(bytes.NewReader(kernel))
	if err != nil {
		return fmt.Errorf("%s: payload is not an ELF kernel: %w", bzImage, err)
	}
	f.Close()
	return os.WriteFile(dst, kernel, 0o644)
}

// bzPayload returns the compressed kernel of a bzImage.
func bzPayload(b []byte) ([]byte, error) {
	if len(b) < 0x250 || string(b[0x202:0x206]) != "HdrS" {
		return nil, errors.New("not a bzImage (no HdrS setup header)")
	}
	if v := binary.LittleEndian.Uint16(b[0x206:]); v < 0x208 {
		return nil, fmt.Errorf("boot protocol %#x predates payload fields", v)
	}
	setupSects := int(b[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	start := (setupSects + 1) * 512
	off := start + int(binary.LittleEndian.Uint32(b[0x248:]))
	n := int(binary.LittleEndian.Uint32(b[0x24c:]))
	if off+n > len(b) || n == 0 {
		return nil, errors.New("payload outside the file")
	}
	return b[off : off+n], nil
}

func decompress(p []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(p, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(p))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(zr)
	case bytes.HasPrefix(p, []byte("\xfd7zXZ\x00")):
		return run(p, "xz", "-dc")
	case bytes.HasPrefix(p, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return run(p, "zstd", "-dcq")
	}
	return nil, fmt.Errorf("unknown compression (magic % x)", p[:min(6, len(p))])
}

// run pipes in through a decompressor. The payload is followed by the
// decompressor's size field, so trailing garbage is expected and tolerated
// where the tool allows (xz -dc stops at the stream end with --single-stream).
func run(in []byte, name string, args ...string) ([]byte, error) {
	if name == "xz" {
		args = append(args, "--single-stream")
	}
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(in)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil && out.Len() == 0 {
		return nil, fmt.Errorf("%s: %v: %s", name, err, errb.String())
	}
	return out.Bytes(), nil
}

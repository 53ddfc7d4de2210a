package image

import (
	"fmt"
	"io"
)

// cpioWriter writes the "newc" cpio format the kernel unpacks as an
// initramfs. Entries are written in order; directories before their files.
type cpioWriter struct {
	w   io.Writer
	ino int
}

func (c *cpioWriter) header(name string, mode uint32, size int) error {
	c.ino++
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(name)+1, 0)
	if _, err := io.WriteString(c.w, hdr+name+"\x00"); err != nil {
		return err
	}
	return c.pad(len(hdr) + len(name) + 1)
}

func (c *cpioWriter) pad(n int) error {
	if r := n % 4; r != 0 {
		_, err := c.w.Write(make([]byte, 4-r))
		return err
	}
	return nil
}

// Dir adds a directory.
func (c *cpioWriter) Dir(name string) error { return c.header(name, 0o040755, 0) }

// File adds a regular file with permission bits perm.
func (c *cpioWriter) File(name string, perm uint32, data []byte) error {
	if err := c.header(name, 0o100000|perm, len(data)); err != nil {
		return err
	}
	if _, err := c.w.Write(data); err != nil {
		return err
	}
	return c.pad(len(data))
}

// Symlink adds a symbolic link.
func (c *cpioWriter) Symlink(name, target string) error {
	if err := c.header(name, 0o120777, len(target)); err != nil {
		return err
	}
	if _, err := io.WriteString(c.w, target); err != nil {
		return err
	}
	return c.pad(len(target))
}

// Close writes the trailer.
func (c *cpioWriter) Close() error { return c.header("TRAILER!!!", 0, 0) }

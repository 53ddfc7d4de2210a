package microvm

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/aetherium/aetherium/internal/errdefs"
)

// ConsoleKeep is how much of a sandbox's console log a trim keeps: its last
// 1 MiB. The log is a ring in effect: the VMM appends to console.log and
// TrimConsoles punches out everything before the last ConsoleKeep bytes
// once more than 2×ConsoleKeep is allocated, so a guest that floods its
// serial console costs at most about 2×ConsoleKeep of disk (plus what it
// writes between two trims). The file's size stays the VMM's write offset
// (the holes read as nothing), so the VMM, which holds the file open and
// outlives aetherd, never notices.
const ConsoleKeep = 1 << 20

const consoleFile = "console.log"

// Console returns at most the last maxBytes of the sandbox's console log,
// read by seeking to the end, never by loading the file; data in a punched
// hole is gone and not returned. ErrNotFound while there is no log.
func (d *Dirs) Console(id string, maxBytes int) ([]byte, error) {
	f, err := os.Open(filepath.Join(d.Dir(id), consoleFile))
	if err != nil {
		return nil, errdefs.NotFound("sandbox %s has no console log yet", id)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	start := max(size-int64(max(maxBytes, 0)), 0)
	off, err := f.Seek(start, unix.SEEK_DATA)
	switch {
	case errors.Is(err, syscall.ENXIO): // only a hole after start
		return []byte{}, nil
	case err == nil:
		start = off
	}
	if start >= size {
		return []byte{}, nil
	}
	b := make([]byte, size-start)
	n, err := io.ReadFull(io.NewSectionReader(f, start, size-start), b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:n], nil
}

// TrimConsoles trims the console log of every sandbox this instance owns
// (see ConsoleKeep). It is cheap when nothing needs trimming (one stat per
// sandbox) and safe while the VMMs write; it returns the first error and
// trims the rest anyway.
func (d *Dirs) TrimConsoles() error {
	var errs []error
	for _, m := range d.all() {
		if err := trimConsole(filepath.Join(d.Dir(m.ID), consoleFile), ConsoleKeep); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// trimConsole frees all but the last keep bytes of the file at path once it
// holds more than 2×keep, by punching a hole (size unchanged). A missing
// file is nothing to trim.
func trimConsole(path string, keep int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	if st.Blocks*512 <= 2*keep || st.Size <= keep {
		return nil
	}
	end := (st.Size - keep) &^ 4095
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, end); err != nil {
		return &os.PathError{Op: "punch hole", Path: path, Err: err}
	}
	return nil
}

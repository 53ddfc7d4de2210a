package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aetherium/aetherium/internal/agentproto"
)

// listBatch is roughly how many bytes of JSON one Data frame of a listing
// carries (an entry is at most a few KiB, well under agentproto.MaxPayload).
const listBatch = 256 << 10

// list serves the list operation: the entries of a directory as lstat sees
// them, sorted by name, at most agentproto.MaxListEntries.
func (s *Server) list(st *stream, req *agentproto.ListRequest) {
	if !filepath.IsAbs(req.Path) {
		st.fail(agentproto.CodeInvalidArgument, fmt.Errorf("path %q is not absolute", req.Path))
		return
	}
	entries, truncated, err := readDir(req.Path, agentproto.MaxListEntries)
	if err != nil {
		st.fail(fileErrCode(err), err)
		return
	}
	if err := sendEntries(st, entries); err != nil {
		return
	}
	st.writeJSON(agentproto.TypeResponse, agentproto.Response{Truncated: truncated})
}

// readDir reads at most max entries of the directory at path.
func readDir(path string, max int) ([]agentproto.DirEntry, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if !fi.IsDir() {
		return nil, false, &fs.PathError{Op: "list", Path: path, Err: errNotDir}
	}
	var out []agentproto.DirEntry
	for len(out) <= max {
		des, err := f.ReadDir(256)
		for _, de := range des {
			if e, ok := dirEntry(int(f.Fd()), de); ok {
				out = append(out, e)
			}
		}
		if errors.Is(err, io.EOF) || len(des) == 0 {
			break
		}
		if err != nil {
			return nil, false, err
		}
	}
	slices.SortFunc(out, func(a, b agentproto.DirEntry) int { return strings.Compare(a.Name, b.Name) })
	truncated := len(out) > max
	return out[:min(len(out), max)], truncated, nil
}

var errNotDir = syscall.ENOTDIR

// dirEntry describes de with lstat; false when it vanished meanwhile.
func dirEntry(dirfd int, de fs.DirEntry) (agentproto.DirEntry, bool) {
	fi, err := de.Info() // lstat: a symlink is described, not followed
	if err != nil {
		return agentproto.DirEntry{}, false
	}
	e := agentproto.DirEntry{Name: de.Name(), Size: fi.Size(), MTime: fi.ModTime().UTC().Truncate(time.Millisecond),
		Mode: uint32(fi.Mode().Perm())}
	if fi.Mode()&fs.ModeSetuid != 0 {
		e.Mode |= 0o4000
	}
	if fi.Mode()&fs.ModeSetgid != 0 {
		e.Mode |= 0o2000
	}
	if fi.Mode()&fs.ModeSticky != 0 {
		e.Mode |= 0o1000
	}
	switch {
	case fi.Mode().IsRegular():
		e.Type = agentproto.EntryFile
	case fi.IsDir():
		e.Type = agentproto.EntryDir
	case fi.Mode()&fs.ModeSymlink != 0:
		e.Type = agentproto.EntrySymlink
		e.Target = readlinkAt(dirfd, de.Name())
	default:
		e.Type = agentproto.EntryOther
	}
	return e, true
}

// readlinkAt reads the target of the symlink name in the directory dirfd.
func readlinkAt(dirfd int, name string) string {
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// sendEntries sends entries as Data frames, each a JSON array of about
// listBatch bytes.
func sendEntries(st *stream, entries []agentproto.DirEntry) error {
	batch := []byte{'['}
	flush := func() error {
		if len(batch) == 1 {
			return nil
		}
		batch[len(batch)-1] = ']' // the trailing comma
		err := st.write(agentproto.TypeData, batch)
		batch = []byte{'['}
		return err
	}
	for _, e := range entries {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if len(batch)+len(b) > listBatch {
			if err := flush(); err != nil {
				return err
			}
		}
		batch = append(append(batch, b...), ',')
	}
	return flush()
}

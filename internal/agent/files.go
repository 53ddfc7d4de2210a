package agent

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/aetherium/aetherium/internal/agentproto"
)

func fileErrCode(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return agentproto.CodeNotFound
	case errors.Is(err, fs.ErrPermission):
		return agentproto.CodePermission
	case errors.Is(err, syscall.ENOTDIR):
		return agentproto.CodeInvalidArgument
	}
	return agentproto.CodeInternal
}

// filePut writes the streamed data to a temporary file beside the target and
// renames it into place only after DataEnd, so a broken transfer never leaves
// a truncated file behind.
func (s *Server) filePut(st *stream, req *agentproto.FilePutRequest) {
	if !filepath.IsAbs(req.Path) {
		st.fail(agentproto.CodeInvalidArgument, fmt.Errorf("path %q is not absolute", req.Path))
		return
	}
	mode := fs.FileMode(req.Mode & 0o7777)
	if mode == 0 {
		mode = 0o644
	}
	dir := filepath.Dir(req.Path)
	if req.MkdirAll {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			st.fail(fileErrCode(err), err)
			return
		}
	}
	tmp, err := os.CreateTemp(dir, ".aether-put-*")
	if err != nil {
		st.fail(fileErrCode(err), err)
		return
	}
	size, err := receiveData(st, tmp)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), req.Path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		st.fail(fileErrCode(err), err)
		return
	}
	st.writeJSON(agentproto.TypeResponse, agentproto.Response{Size: size})
}

func receiveData(st *stream, w io.Writer) (int64, error) {
	var n int64
	for {
		f, err := agentproto.ReadFrame(st, 0)
		if err != nil {
			return n, fmt.Errorf("transfer interrupted: %w", err)
		}
		switch f.Type {
		case agentproto.TypeData:
			if _, err := w.Write(f.Payload); err != nil {
				return n, err
			}
			n += int64(len(f.Payload))
		case agentproto.TypeDataEnd:
			return n, nil
		default:
			return n, fmt.Errorf("unexpected %s frame during transfer", f.Type)
		}
	}
}

func (s *Server) fileGet(st *stream, req *agentproto.FileGetRequest) {
	f, err := os.Open(req.Path)
	if err != nil {
		st.fail(fileErrCode(err), err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		st.fail(fileErrCode(err), err)
		return
	}
	if !fi.Mode().IsRegular() {
		st.fail(agentproto.CodeInvalidArgument, fmt.Errorf("%s is not a regular file", req.Path))
		return
	}
	if err := st.writeJSON(agentproto.TypeResponse, agentproto.Response{Size: fi.Size(), Mode: uint32(fi.Mode().Perm())}); err != nil {
		return
	}
	buf := make([]byte, 256<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if st.write(agentproto.TypeData, buf[:n]) != nil {
				return
			}
		}
		if err == io.EOF {
			st.write(agentproto.TypeDataEnd, nil)
			return
		}
		if err != nil {
			// The host sees a stream without DataEnd and reports a broken transfer.
			return
		}
	}
}

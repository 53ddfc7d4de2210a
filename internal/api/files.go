package api

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/internal/cluster"
	"github.com/aetherium/aetherium/internal/errdefs"
)

// handleFilePut streams the request body into ?path= inside the sandbox. The
// file appears only once the whole body arrived (the agent renames a
// temporary file), so a cut-off upload never leaves a partial file.
func (s *Server) filePut(sb cluster.Sandboxes) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.handleFilePut(w, r, sb) }
}

func (s *Server) handleFilePut(w http.ResponseWriter, r *http.Request, sb cluster.Sandboxes) {
	vm, ok := s.lookupVM(w, r)
	if !ok {
		return
	}
	path := r.URL.Query().Get("path")
	var mode uint64
	if m := r.URL.Query().Get("mode"); m != "" {
		var err error
		if mode, err = strconv.ParseUint(m, 8, 32); err != nil || mode > 0o7777 {
			s.writeError(w, r, errdefs.InvalidArgument("mode: %q is not an octal permission like 0644", m))
			return
		}
	}
	// A large upload may take longer than the server's read timeout: this
	// route reads its body without a deadline (files are capped by the agent).
	http.NewResponseController(w).SetReadDeadline(time.Time{})
	n, err := sb.PutFile(r.Context(), vm, path, uint32(mode), r.Body)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiv1.FileWritten{Path: path, Size: n})
}

// handleFileGet streams the file at ?path= out of the sandbox. A transfer that
// breaks midway aborts the connection rather than ending it cleanly, so
// clients never mistake a truncated file for a whole one.
func (s *Server) fileGet(sb cluster.Sandboxes) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.handleFileGet(w, r, sb) }
}

func (s *Server) handleFileGet(w http.ResponseWriter, r *http.Request, sb cluster.Sandboxes) {
	vm, ok := s.lookupVM(w, r)
	if !ok {
		return
	}
	fr, err := sb.GetFile(r.Context(), vm, r.URL.Query().Get("path"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer fr.Close()
	http.NewResponseController(w).SetWriteDeadline(time.Time{}) // a large download outlasts the write timeout
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(fr.Size, 10))
	w.Header().Set("X-File-Mode", strconv.FormatUint(uint64(fr.Mode), 8))
	if _, err := io.Copy(w, fr); err != nil {
		panic(http.ErrAbortHandler)
	}
}

// maxConsole bounds ?max_bytes on the console endpoint.
const maxConsole = 1 << 20

func (s *Server) vmConsole(sb cluster.Sandboxes) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		vm, ok := s.lookupVM(w, r)
		if !ok {
			return
		}
		n := 64 << 10
		if v := r.URL.Query().Get("max_bytes"); v != "" {
			var err error
			if n, err = strconv.Atoi(v); err != nil || n < 1 || n > maxConsole {
				s.writeError(w, r, errdefs.InvalidArgument("max_bytes: must be between 1 and %d", maxConsole))
				return
			}
		}
		b, err := sb.Console(r.Context(), vm, n)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(b)
	}
}

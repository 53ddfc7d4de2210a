package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/internal/cluster"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// startBackground answers an exec with background: 202 and the PID.
func (s *Server) startBackground(w http.ResponseWriter, r *http.Request, sb cluster.Sandboxes, vm *store.VM, p *task.ExecParams) {
	pid, err := sb.StartProcess(r.Context(), vm, p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, apiv1.ProcessStarted{PID: pid})
}

// processes lists the processes started in the sandbox with background or
// keep_running.
func (s *Server) processes(sb cluster.Sandboxes) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		vm, ok := s.lookupVM(w, r)
		if !ok {
			return
		}
		ps, err := sb.Processes(r.Context(), vm)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if ps == nil {
			ps = []apiv1.Process{}
		}
		writeJSON(w, http.StatusOK, apiv1.ProcessList{Processes: ps})
	}
}

// pathPID parses the {pid} path segment.
func pathPID(r *http.Request) (int, error) {
	pid, err := strconv.Atoi(r.PathValue("pid"))
	if err != nil || pid < 1 {
		return 0, errdefs.InvalidArgument("pid: %q is not a process ID", r.PathValue("pid"))
	}
	return pid, nil
}

// processSignal sends an allowlisted signal to a process the agent started
// and still tracks; the agent refuses any other PID before kill(2).
func (s *Server) processSignal(sb cluster.Sandboxes) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		vm, ok := s.lookupVM(w, r)
		if !ok {
			return
		}
		pid, err := pathPID(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var req apiv1.SignalRequest
		if err := decodeJSON(w, r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		sig, ok := cluster.SignalNumber(req.Signal)
		if !ok {
			s.writeError(w, r, errdefs.InvalidArgument("signal: %q is not one of HUP, INT, QUIT, KILL, TERM, USR1, USR2, TSTP, CONT, WINCH", req.Signal))
			return
		}
		if err := sb.SignalProcess(r.Context(), vm, pid, sig); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// processOutput streams a process's buffered output as exec events
// (NDJSON); with ?follow=1 it goes on until the process exits and ends with
// its exit event, as the exec that started it would have. Without follow,
// a process that still runs ends the stream without an exit event. The
// X-Output-Dropped header counts the bytes the agent had already dropped.
// bufferedOutputWait bounds a read of a process's buffered output (no
// follow).
const bufferedOutputWait = 30 * time.Second

func (s *Server) processOutput(sb cluster.Sandboxes) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		vm, ok := s.lookupVM(w, r)
		if !ok {
			return
		}
		pid, err := pathPID(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		follow, err := queryBool(r, "follow")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		ctx := r.Context()
		if follow {
			release, ok := s.takeStream(w, r)
			if !ok {
				return
			}
			defer release()
		} else {
			// What is buffered (1 MiB at most) takes milliseconds; a guest
			// that stalls the read holds no stream slot, so it is cut.
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, bufferedOutputWait)
			defer cancel()
		}
		o, err := sb.ProcessOutput(ctx, vm, pid, follow)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		defer o.Close()
		rc := liftDeadlines(w)
		w.Header().Set("X-Output-Dropped", strconv.FormatInt(o.Dropped(), 10))
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		es := &eventStream{w: w, rc: rc, enc: json.NewEncoder(w), started: true}
		exit, err := o.Copy(streamWriter{es, apiv1.ExecStdout}, streamWriter{es, apiv1.ExecStderr})
		switch {
		case err != nil:
			_, detail := errorDetailOf(err)
			es.send(&apiv1.ExecEvent{Type: apiv1.ExecError, Error: &detail})
		case exit != nil:
			es.send(&apiv1.ExecEvent{Type: apiv1.ExecEnd, ExecExit: *exit})
		}
	}
}

// queryBool reads a boolean query parameter: 1/true or 0/false, absent false.
func queryBool(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errdefs.InvalidArgument("%s: %q is not 1, true, 0 or false", name, v)
	}
	return b, nil
}

// fileList lists the directory ?path= (lstat; at most 10,000 entries).
func (s *Server) fileList(sb cluster.Sandboxes) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		vm, ok := s.lookupVM(w, r)
		if !ok {
			return
		}
		l, err := sb.ListDir(r.Context(), vm, r.URL.Query().Get("path"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, l)
	}
}

// fileWatch streams changes under the directory ?path= (with ?recursive=1,
// its subdirectories) as Server-Sent Events: "event: file" with a
// FileEvent as data. Errors found before the watch is set are plain 4xx/5xx
// answers. A watch holds one of its key's Config.MaxStreams.
func (s *Server) fileWatch(sb cluster.Sandboxes) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		vm, ok := s.lookupVM(w, r)
		if !ok {
			return
		}
		recursive, err := queryBool(r, "recursive")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		release, ok := s.takeStream(w, r)
		if !ok {
			return
		}
		defer release()
		rc := liftDeadlines(w)
		started := false
		ready := func() {
			started = true
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-cache")
			w.WriteHeader(http.StatusOK)
			fmt.Fprint(w, ": watching\n\n")
			rc.Flush()
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		defer context.AfterFunc(s.streams, cancel)() // shutdown ends the stream
		err = sb.WatchDir(ctx, vm, r.URL.Query().Get("path"), recursive, ready, func(ev apiv1.FileEvent) error {
			b, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "event: file\ndata: %s\n\n", b)
			return rc.Flush()
		})
		if err != nil && !started {
			s.writeError(w, r, err)
		}
	}
}

package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/auth"
	"github.com/aetherium/aetherium/internal/cluster"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/task"
)

// eventStream writes apiv1.ExecEvents, flushing each so output arrives live. The
// 200 header goes out with the first event, so errors found before the
// command produced anything still get their proper 4xx/5xx status.
type eventStream struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	rc      *http.ResponseController
	enc     *json.Encoder
	started bool
}

func (es *eventStream) send(ev *apiv1.ExecEvent) error {
	if err := es.end(ev); err != nil {
		return err
	}
	return es.rc.Flush()
}

// end writes the stream's last event without flushing it: the handler
// returns right after, and net/http sends it with the response's end in one
// write (for a command without output, the whole response), so the client
// reads the exit and the end of the body together instead of waiting for a
// second write.
func (es *eventStream) end(ev *apiv1.ExecEvent) error {
	es.mu.Lock()
	defer es.mu.Unlock()
	if !es.started {
		es.started = true
		es.w.Header().Set("Content-Type", "application/x-ndjson")
		es.w.WriteHeader(http.StatusOK)
	}
	return es.enc.Encode(ev)
}

type streamWriter struct {
	es  *eventStream
	typ string
}

func (sw streamWriter) Write(p []byte) (int, error) {
	if err := sw.es.send(&apiv1.ExecEvent{Type: sw.typ, Data: p}); err != nil {
		return 0, err
	}
	return len(p), nil
}

// handleVMExec runs a command directly in the sandbox, not through the queue,
// and streams its output. With ?stdin=true the body is the JSON request, a
// newline, then raw stdin bytes until the body ends (the connection is full
// duplex, so output streams while stdin is still being sent).
func (s *Server) vmExec(sb cluster.Sandboxes) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.handleVMExec(w, r, sb) }
}

func (s *Server) handleVMExec(w http.ResponseWriter, r *http.Request, sb cluster.Sandboxes) {
	rc := http.NewResponseController(w)
	withStdin := r.URL.Query().Get("stdin") == "true"
	if withStdin {
		// Before any refusal: net/http would otherwise drain the unread
		// body before sending it, and a client holding stdin open until
		// the command answers would wait for the read timeout.
		rc.EnableFullDuplex()
	}
	vm, ok := s.lookupVM(w, r)
	if !ok {
		return
	}
	if auth.FromContext(r.Context()) != nil { // public route: the project's Quota.Execs
		release, ok := s.takeExec(w, r, vm.ProjectID)
		if !ok {
			return
		}
		defer release()
	}
	var p task.ExecParams
	var stdin io.Reader
	// An exec streams for as long as its command runs (and its stdin for
	// as long as the client sends it): no server read or write deadline.
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	if withStdin {
		br := bufio.NewReader(r.Body)
		line, err := readLine(br, maxJSONBody)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := decodeFrom(bytes.NewReader(line), &p); err != nil {
			s.writeError(w, r, err)
			return
		}
		stdin = br
	} else if err := decodeJSON(w, r, &p); err != nil {
		s.writeError(w, r, err)
		return
	}
	if p.Background {
		if withStdin {
			s.writeError(w, r, errdefs.InvalidArgument("background: a background command takes no stdin"))
			return
		}
		s.startBackground(w, r, sb, vm, &p)
		return
	}
	es := &eventStream{w: w, rc: rc, enc: json.NewEncoder(w)}
	e, err := sb.Exec(r.Context(), vm, &p, task.ExecRecord{}, agentclient.ExecIO{
		Stdin: stdin, Stdout: streamWriter{es, apiv1.ExecStdout}, Stderr: streamWriter{es, apiv1.ExecStderr},
	})
	if err != nil {
		s.metrics.execs.WithLabelValues("error").Inc()
		if !es.started {
			s.writeError(w, r, err)
			return
		}
		_, detail := errorDetailOf(err)
		es.end(&apiv1.ExecEvent{Type: apiv1.ExecError, Error: &detail})
		return
	}
	s.metrics.execs.WithLabelValues("exit").Inc()
	es.end(&apiv1.ExecEvent{Type: apiv1.ExecEnd, ExecExit: apiv1.ExecExit{ExitCode: e.ExitCode, Signal: e.Signal,
		TimedOut: e.TimedOut, DurationMS: e.DurationMS, ExecutionID: e.ID}})
}

// readLine reads up to and without the first newline (or the end of the
// body), refusing lines longer than max bytes: the request line of an exec
// with stdin, which must not buffer an unbounded body.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max+1 {
			return nil, &http.MaxBytesError{Limit: int64(max)}
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, io.EOF):
			return line, nil
		case !errors.Is(err, bufio.ErrBufferFull):
			return nil, errdefs.InvalidArgument("reading request line: %v", err)
		}
	}
}

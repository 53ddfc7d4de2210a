package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/auth"
	"github.com/aetherium/aetherium/internal/cluster"
	"github.com/aetherium/aetherium/internal/errdefs"
)

// Bounds of the PTY route's input.
const (
	maxPtySize    = 1000     // columns or rows
	maxPtyMessage = 64 << 10 // one WebSocket message from the client
	maxPtyArgs    = 256      // argv and env entries, each
	maxPtyArg     = 16 << 10 // bytes in one of them
)

// loginShell is what a terminal runs when the request names no command.
var loginShell = []string{"/bin/sh", "-c", "if command -v bash >/dev/null; then exec bash -l; fi; exec sh -l"}

// ptyRequest reads the PTY route's query: argv (repeated) or cmd (a shell
// line), env (repeated KEY=VALUE), cwd, user, cols and rows.
func ptyRequest(q url.Values) (*agentproto.PtyRequest, error) {
	req := &agentproto.PtyRequest{Argv: q["argv"], Env: q["env"], Cwd: q.Get("cwd"), User: q.Get("user")}
	if cmd := q.Get("cmd"); cmd != "" {
		if len(req.Argv) > 0 {
			return nil, errdefs.InvalidArgument("give argv or cmd, not both")
		}
		req.Argv = []string{"/bin/sh", "-c", cmd}
	}
	if len(req.Argv) == 0 {
		req.Argv = loginShell
	}
	if req.Argv[0] == "" {
		return nil, errdefs.InvalidArgument("argv: the program name is empty")
	}
	for name, list := range map[string][]string{"argv": req.Argv, "env": req.Env} {
		if len(list) > maxPtyArgs {
			return nil, errdefs.InvalidArgument("%s: at most %d entries", name, maxPtyArgs)
		}
		for _, a := range list {
			if len(a) > maxPtyArg || strings.IndexByte(a, 0) >= 0 {
				return nil, errdefs.InvalidArgument("%s: entries are at most %d bytes, without NUL", name, maxPtyArg)
			}
		}
	}
	for _, kv := range req.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, errdefs.InvalidArgument("env: %q is not KEY=VALUE", kv)
		}
	}
	if req.Cwd != "" && !path.IsAbs(req.Cwd) {
		return nil, errdefs.InvalidArgument("cwd: %q must be an absolute path", req.Cwd)
	}
	cols, err := ptySize(q, "cols", 80)
	if err != nil {
		return nil, err
	}
	rows, err := ptySize(q, "rows", 24)
	if err != nil {
		return nil, err
	}
	req.Cols, req.Rows = cols, rows
	return req, nil
}

func ptySize(q url.Values, name string, def uint16) (uint16, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPtySize {
		return 0, errdefs.InvalidArgument("%s: %q is not between 1 and %d", name, v, maxPtySize)
	}
	return uint16(n), nil
}

// vmPty serves GET /api/v1/vms/{id}/pty: a process on a pseudo-terminal,
// over a WebSocket (wire format: apiv1.PtyMessage). The process starts
// before the upgrade, so a bad command is an ordinary 4xx answer.
func (s *Server) vmPty(sb cluster.Sandboxes) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.handleVMPty(w, r, sb) }
}

func (s *Server) handleVMPty(w http.ResponseWriter, r *http.Request, sb cluster.Sandboxes) {
	vm, ok := s.lookupVM(w, r)
	if !ok {
		return
	}
	req, err := ptyRequest(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		s.writeError(w, r, errdefs.InvalidArgument("this route is a WebSocket: send Upgrade: websocket"))
		return
	}
	if auth.FromContext(r.Context()) != nil { // public route: a terminal holds one of Quota.Execs
		release, ok := s.takeExec(w, r, vm.ProjectID)
		if !ok {
			return
		}
		defer release()
	}
	liftDeadlines(w) // a terminal lasts as long as its user wants
	term, err := sb.Pty(r.Context(), vm, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer term.Close()
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept wrote the response
	}
	defer c.CloseNow()
	c.SetReadLimit(maxPtyMessage)
	s.servePty(r.Context(), c, term)
}

// servePty runs one terminal session: output to the client until the
// process exits, the client's input and control messages to the terminal.
func (s *Server) servePty(ctx context.Context, c *websocket.Conn, term cluster.Terminal) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.streams, func() { c.Close(websocket.StatusGoingAway, "server shutting down") })
	defer stop()
	var wmu sync.Mutex
	send := func(typ websocket.MessageType, b []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return c.Write(wctx, typ, b)
	}
	sendJSON := func(m *apiv1.PtyMessage) error {
		b, _ := json.Marshal(m)
		return send(websocket.MessageText, b)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		s.ptyOutput(c, term, send, sendJSON)
	}()
	s.ptyInput(ctx, c, term, sendJSON)
	term.Close() // unblocks the output's Read when the client left first
	wg.Wait()
}

// ptyOutput copies the terminal's output to the client, then sends the exit
// and closes the WebSocket normally.
func (s *Server) ptyOutput(c *websocket.Conn, term cluster.Terminal, send func(websocket.MessageType, []byte) error,
	sendJSON func(*apiv1.PtyMessage) error) {
	buf := make([]byte, 32<<10)
	for {
		n, err := term.Read(buf)
		if n > 0 {
			if send(websocket.MessageBinary, buf[:n]) != nil {
				return
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			_, detail := errorDetailOf(err)
			sendJSON(&apiv1.PtyMessage{Type: apiv1.PtyError, Error: &detail})
			c.Close(websocket.StatusInternalError, "terminal session broke")
			return
		}
	}
	exit, err := term.Wait()
	if err != nil {
		_, detail := errorDetailOf(err)
		sendJSON(&apiv1.PtyMessage{Type: apiv1.PtyError, Error: &detail})
		c.Close(websocket.StatusInternalError, "terminal session broke")
		return
	}
	code := exit.ExitCode
	if sendJSON(&apiv1.PtyMessage{Type: apiv1.PtyExit, ExitCode: &code, Signal: exit.Signal}) == nil {
		c.Close(websocket.StatusNormalClosure, "")
	}
}

// ptyInput applies the client's messages until it closes or ctx ends: binary
// ones are typed, text ones are resize and signal controls. A bad control
// message is answered with an error message and otherwise ignored.
func (s *Server) ptyInput(ctx context.Context, c *websocket.Conn, term cluster.Terminal, sendJSON func(*apiv1.PtyMessage) error) {
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		if typ == websocket.MessageBinary {
			if _, err := term.Write(b); err != nil {
				return
			}
			continue
		}
		if err := ptyControl(term, b); err != nil {
			_, detail := errorDetailOf(err)
			sendJSON(&apiv1.PtyMessage{Type: apiv1.PtyError, Error: &detail})
		}
	}
}

func ptyControl(term cluster.Terminal, b []byte) error {
	var m apiv1.PtyMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return errdefs.InvalidArgument("text messages are JSON controls: %v", err)
	}
	switch m.Type {
	case apiv1.PtyResize:
		if m.Cols < 1 || m.Cols > maxPtySize || m.Rows < 1 || m.Rows > maxPtySize {
			return errdefs.InvalidArgument("resize: cols and rows must be between 1 and %d", maxPtySize)
		}
		term.Resize(uint16(m.Cols), uint16(m.Rows))
	case apiv1.PtySignal:
		sig, ok := cluster.SignalNumber(m.Signal)
		if !ok {
			return errdefs.InvalidArgument("signal: %q is not one of SIGHUP, SIGINT, SIGQUIT, SIGKILL, SIGTERM, SIGUSR1, SIGUSR2, SIGTSTP, SIGCONT, SIGWINCH", m.Signal)
		}
		term.Signal(sig)
	default:
		return errdefs.InvalidArgument("unknown control message type %q (want resize or signal)", m.Type)
	}
	return nil
}

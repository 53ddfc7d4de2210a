package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/coder/websocket"

	"github.com/aetherium/aetherium/apiv1"
)

// PtyOptions says what to run on a sandbox's terminal. With neither Argv
// nor Command the server starts a login shell (bash if the sandbox has it).
type PtyOptions struct {
	// Argv is the program and its arguments, run as is.
	Argv []string
	// Command is a shell command line, run by /bin/sh -c.
	Command string
	// Env holds KEY=VALUE entries added to the environment.
	Env []string
	// Cwd is the working directory; empty means "/".
	Cwd string
	// User runs the process as this user; empty means the agent's.
	User string
	// Cols and Rows are the initial size; 0 means 80x24.
	Cols, Rows int
}

func (o *PtyOptions) query() url.Values {
	v := url.Values{}
	for _, a := range o.Argv {
		v.Add("argv", a)
	}
	for _, e := range o.Env {
		v.Add("env", e)
	}
	for k, s := range map[string]string{"cmd": o.Command, "cwd": o.Cwd, "user": o.User} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if o.Cols > 0 && o.Rows > 0 {
		v.Set("cols", strconv.Itoa(o.Cols))
		v.Set("rows", strconv.Itoa(o.Rows))
	}
	return v
}

// Terminal is a process on a sandbox's pseudo-terminal, over the PTY
// WebSocket. Read and Wait belong to one goroutine; Write, Resize and Signal
// may be called from others. Close kills the process.
type Terminal struct {
	conn *websocket.Conn
	wmu  sync.Mutex
	buf  []byte
	exit *apiv1.PtyMessage
	err  error
}

// Pty starts a process on a new terminal in sandbox vm. ctx bounds only the
// start. Errors before the process runs are *Error with the API's status.
func (c *Client) Pty(ctx context.Context, vm string, o *PtyOptions) (*Terminal, error) {
	u := "ws" + strings.TrimPrefix(c.base, "http") + c.prefix + "/vms/" + url.PathEscape(vm) + "/pty?" + o.query().Encode()
	conn, err := c.dialWebSocket(ctx, u)
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(1 << 20)
	return &Terminal{conn: conn}, nil
}

// dialWebSocket opens a WebSocket with the client's credentials, turning an
// HTTP error answer into *Error.
func (c *Client) dialWebSocket(ctx context.Context, u string) (*websocket.Conn, error) {
	opts := &websocket.DialOptions{HTTPClient: c.http, HTTPHeader: http.Header{}}
	if c.token != "" {
		opts.HTTPHeader.Set("Authorization", "Bearer "+c.token)
	}
	if c.project != "" {
		opts.HTTPHeader.Set(ProjectHeader, c.project)
	}
	conn, resp, err := websocket.Dial(ctx, u, opts)
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 {
			return nil, decodeError(resp)
		}
		return nil, fmt.Errorf("cannot reach aetherd at %s: %w", c.base, err)
	}
	return conn, nil
}

// Read reads the terminal's output. It returns io.EOF once the process has
// exited and its output was read; Wait then returns the exit.
func (t *Terminal) Read(p []byte) (int, error) {
	for len(t.buf) == 0 {
		if t.exit != nil {
			return 0, io.EOF
		}
		if t.err != nil {
			return 0, t.err
		}
		typ, b, err := t.conn.Read(context.Background())
		if err != nil {
			t.err = fmt.Errorf("terminal: %w", err)
			return 0, t.err
		}
		if typ == websocket.MessageBinary {
			t.buf = b
			continue
		}
		var m apiv1.PtyMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.err = fmt.Errorf("terminal: bad message: %w", err)
			return 0, t.err
		}
		switch {
		case m.Type == apiv1.PtyExit && m.ExitCode != nil:
			t.exit = &m
		case m.Type == apiv1.PtyError && m.Error != nil:
			t.err = &Error{Status: http.StatusBadGateway, Code: m.Error.Code, Message: m.Error.Message}
		}
	}
	n := copy(p, t.buf)
	t.buf = t.buf[n:]
	return n, nil
}

// Wait returns the exit message once Read returned io.EOF, or the error
// that ended the session.
func (t *Terminal) Wait() (*apiv1.PtyMessage, error) {
	if t.exit == nil && t.err == nil {
		return nil, errors.New("terminal: Wait before the output ended")
	}
	return t.exit, t.err
}

// Write types p into the terminal.
func (t *Terminal) Write(p []byte) (int, error) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if err := t.conn.Write(context.Background(), websocket.MessageBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Resize sets the terminal's size.
func (t *Terminal) Resize(cols, rows int) error {
	return t.control(&apiv1.PtyMessage{Type: apiv1.PtyResize, Cols: cols, Rows: rows})
}

// Signal sends a signal ("SIGINT") to the terminal's foreground process group.
func (t *Terminal) Signal(name string) error {
	return t.control(&apiv1.PtyMessage{Type: apiv1.PtySignal, Signal: name})
}

func (t *Terminal) control(m *apiv1.PtyMessage) error {
	b, _ := json.Marshal(m)
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return t.conn.Write(context.Background(), websocket.MessageText, b)
}

// Close ends the session, which kills the process.
func (t *Terminal) Close() error {
	return t.conn.CloseNow()
}

// DialPort connects to 127.0.0.1:port inside sandbox vm through
// GET /vms/{id}/tcp/{port} (a WebSocket whose binary messages carry the
// bytes). ctx bounds only the dial.
func (c *Client) DialPort(ctx context.Context, vm string, port int) (net.Conn, error) {
	u := "ws" + strings.TrimPrefix(c.base, "http") + c.prefix + "/vms/" + url.PathEscape(vm) + "/tcp/" + strconv.Itoa(port)
	conn, err := c.dialWebSocket(ctx, u)
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(1 << 20)
	return websocket.NetConn(context.Background(), conn, websocket.MessageBinary), nil
}

package agentclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/errdefs"
)

// needVersion refuses an operation the agent's protocol version lacks.
func (c *Client) needVersion(op string, v int) error {
	if c.hello.Version < v {
		return fmt.Errorf("%w: the sandbox's agent speaks protocol version %d; %s needs %d (recreate the sandbox with a current agent)",
			errdefs.ErrNotImplemented, c.hello.Version, op, v)
	}
	return nil
}

// Pty is a process running on a pseudo-terminal in the sandbox. Read and
// Wait belong to one goroutine; Write, Resize and Signal may be called from
// any other. Close may be called at any time and kills the process.
type Pty struct {
	st   *yamux.Stream
	wmu  sync.Mutex
	buf  []byte // output read but not yet returned
	exit *agentproto.Exit
	err  error
}

// Pty starts req on a new pseudo-terminal. It returns once the process runs:
// a program that cannot be started is ErrNotFound or ErrInvalidArgument, an
// agent older than protocol version 2 ErrNotImplemented. ctx bounds only the
// start; Close ends the process.
func (c *Client) Pty(ctx context.Context, req *agentproto.PtyRequest) (*Pty, error) {
	if err := c.needVersion(agentproto.OpPty, agentproto.VersionPty); err != nil {
		return nil, err
	}
	st, err := c.openResponse(ctx, agentproto.Request{Op: agentproto.OpPty, Pty: req})
	if err != nil {
		return nil, err
	}
	return &Pty{st: st}, nil
}

// openResponse opens an operation that answers Response once it has
// started. ctx bounds only that wait; the caller closes the stream.
func (c *Client) openResponse(ctx context.Context, req agentproto.Request) (*yamux.Stream, error) {
	st, err := c.openStream(req)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { st.SetReadDeadline(time.Now()) })
	f, err := agentproto.ReadFrame(st, 4096)
	if !stop() {
		err = errors.Join(ctx.Err(), err)
	}
	if err != nil {
		st.Close()
		return nil, streamErr(ctx, err)
	}
	var resp agentproto.Response
	if err := mapRemote(f.Decode(agentproto.TypeResponse, &resp)); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// Read reads the terminal's output. It returns io.EOF once the process has
// exited and its output was read; Wait then returns the exit.
func (p *Pty) Read(b []byte) (int, error) {
	for len(p.buf) == 0 {
		if p.exit != nil || p.err != nil {
			return 0, io.EOF
		}
		f, err := agentproto.ReadFrame(p.st, 0)
		if err != nil {
			p.err = errdefs.Unavailable("agent stream broken: %v", err)
			return 0, p.err
		}
		switch f.Type {
		case agentproto.TypeStdout, agentproto.TypeStderr:
			p.buf = f.Payload
		default:
			var exit agentproto.Exit
			if err := mapRemote(f.Decode(agentproto.TypeExit, &exit)); err != nil {
				p.err = err
				return 0, err
			}
			p.exit = &exit
		}
	}
	n := copy(b, p.buf)
	p.buf = p.buf[n:]
	return n, nil
}

// Wait returns the process's exit once Read has returned io.EOF, or the
// error that ended the stream.
func (p *Pty) Wait() (*agentproto.Exit, error) {
	if p.exit == nil && p.err == nil {
		return nil, errdefs.FailedPrecondition("pty: Wait before the output ended")
	}
	return p.exit, p.err
}

// Write types b into the terminal.
func (p *Pty) Write(b []byte) (int, error) {
	for n := 0; n < len(b); {
		chunk := b[n:min(len(b), n+32<<10)]
		if err := p.write(agentproto.TypeStdin, chunk); err != nil {
			return n, err
		}
		n += len(chunk)
	}
	return len(b), nil
}

// Resize sets the terminal's size; the process gets SIGWINCH.
func (p *Pty) Resize(cols, rows uint16) error {
	return p.writeJSON(agentproto.TypeResize, agentproto.Resize{Cols: cols, Rows: rows})
}

// Signal sends sig to the terminal's foreground process group.
func (p *Pty) Signal(sig int) error {
	return p.writeJSON(agentproto.TypeSignal, agentproto.SignalRequest{Signal: sig})
}

// Close ends the stream, which kills the process. It is idempotent.
func (p *Pty) Close() error { return p.st.Close() }

func (p *Pty) write(t agentproto.FrameType, b []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return agentproto.WriteFrame(p.st, t, b)
}

func (p *Pty) writeJSON(t agentproto.FrameType, v any) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return agentproto.WriteJSON(p.st, t, v)
}

// Dial connects to 127.0.0.1:port inside the sandbox through the agent. The
// connection carries raw bytes and has no half-close: closing it (either
// side) ends it. Nothing listening on the port is ErrUnavailable, an agent
// older than protocol version 2 ErrNotImplemented. ctx bounds only the dial.
func (c *Client) Dial(ctx context.Context, port int) (net.Conn, error) {
	if err := c.needVersion(agentproto.OpDial, agentproto.VersionPty); err != nil {
		return nil, err
	}
	st, err := c.openResponse(ctx, agentproto.Request{Op: agentproto.OpDial, Dial: &agentproto.DialRequest{Port: port}})
	if err != nil {
		return nil, err
	}
	return st, nil
}

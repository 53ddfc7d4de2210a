package agentclient

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/errdefs"
)

// ExecTimeoutError reports that the agent killed a process at its timeout.
// It matches errdefs.ErrTimeout with errors.Is.
type ExecTimeoutError struct {
	After time.Duration
}

func (e *ExecTimeoutError) Error() string   { return fmt.Sprintf("command timed out after %s", e.After) }
func (e *ExecTimeoutError) Is(t error) bool { return t == errdefs.ErrTimeout }

// ExecIO connects a process's standard streams. Nil fields mean no stdin and
// discarded output.
type ExecIO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Exec runs req in the sandbox and copies its output to eio as it arrives. It
// returns the exit frame once the process has ended. A process killed at
// req.TimeoutMS returns its exit frame and an *ExecTimeoutError. Cancelling
// ctx kills the process group. A program that cannot be started returns an
// ErrNotFound or ErrInvalidArgument error and no exit.
func (c *Client) Exec(ctx context.Context, req *agentproto.ExecRequest, eio ExecIO) (*agentproto.Exit, error) {
	req.Stdin = eio.Stdin != nil
	if req.KeepRunning {
		if err := c.needProcs("keep_running"); err != nil {
			return nil, err
		}
	}
	st, done, err := c.open(ctx, agentproto.Request{Op: agentproto.OpExec, Exec: req})
	if err != nil {
		return nil, err
	}
	defer done()
	if eio.Stdin != nil {
		go sendStdin(st, eio.Stdin)
	}
	for {
		f, err := agentproto.ReadFrame(st, 0)
		if err != nil {
			go drain(st)
			return nil, streamErr(ctx, err)
		}
		switch f.Type {
		case agentproto.TypeStdout:
			writeOut(eio.Stdout, f.Payload)
		case agentproto.TypeStderr:
			writeOut(eio.Stderr, f.Payload)
		default:
			var exit agentproto.Exit
			if err := mapRemote(f.Decode(agentproto.TypeExit, &exit)); err != nil {
				return nil, err
			}
			if ctx.Err() != nil {
				// The agent may answer the cancellation with the killed
				// process's exit before the stream's deadline bites.
				return &exit, ctx.Err()
			}
			if exit.TimedOut {
				return &exit, &ExecTimeoutError{After: time.Duration(req.TimeoutMS) * time.Millisecond}
			}
			return &exit, nil
		}
	}
}

func writeOut(w io.Writer, p []byte) {
	if w != nil {
		w.Write(p)
	}
}

func sendStdin(st *yamux.Stream, r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if agentproto.WriteFrame(st, agentproto.TypeStdin, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			agentproto.WriteFrame(st, agentproto.TypeStdinClose, nil)
			return
		}
	}
}

// drain reads an abandoned stream to its end so the agent's writers, blocked
// on flow control, can finish.
func drain(st *yamux.Stream) {
	st.SetReadDeadline(time.Now().Add(30 * time.Second))
	io.Copy(io.Discard, st)
}

// Package agentclient is the host side of the agent protocol (see package
// agentproto). It takes any net.Conn to a sandbox's agent, so every runtime
// (unix socket, vsock, virtio-serial) shares it. The daemon's worker and API
// import it; the guest agent does not.
package agentclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/errdefs"
)

// Client is one handshaken connection to an agent. It is safe for concurrent
// use: every operation runs on its own multiplexed stream.
type Client struct {
	conn  net.Conn
	sess  *yamux.Session
	hello agentproto.Hello
}

// Handshake says hello on conn and, when the agent answers with a version
// both speak, starts the multiplexed session. A successful handshake is the
// sandbox's readiness signal. On error conn is closed. The deadline of ctx
// (if any) bounds the handshake.
func Handshake(ctx context.Context, conn net.Conn) (*Client, error) {
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	hello, err := handshake(conn)
	if !stop() {
		err = errors.Join(ctx.Err(), err)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("agent handshake: %w", err)
	}
	conn.SetDeadline(time.Time{})
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	cfg.KeepAliveInterval = keepAliveInterval
	// What a guest can make the host hold per session is bounded: at most
	// MaxStreams streams (an operation is refused beyond), each buffering at
	// most one window of unread data, so 16 MiB. No close timer: yamux's
	// keeps a stream the guest never closes, and through it the session and
	// its buffers, alive for the timer's length even after the session
	// ended (a guest answering garbage to every reconnect grew aetherd by
	// gigabytes); a closed session frees its streams at once instead.
	cfg.MaxStreamWindowSize = streamWindow
	cfg.StreamCloseTimeout = 0
	// Only the host opens streams. One the guest opens would sit in yamux's
	// accept backlog with a receive window the guest can fill (256 of them
	// pin 64 MiB), so the backlog is 1 and any guest-opened stream ends the
	// session: the agent broke the protocol, and the next use reconnects.
	cfg.AcceptBacklog = 1
	sess, err := yamux.Client(conn, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	go refuseStreams(sess)
	return &Client{conn: conn, sess: sess, hello: hello}, nil
}

// refuseStreams closes the session when the guest opens a stream.
func refuseStreams(sess *yamux.Session) {
	if st, err := sess.AcceptStream(); err == nil {
		st.Close()
		sess.Close()
	}
}

func handshake(conn net.Conn) (agentproto.Hello, error) {
	var hello agentproto.Hello
	err := agentproto.WriteJSON(conn, agentproto.TypeHello, agentproto.Hello{
		Version: agentproto.Version, MinVersion: agentproto.MinVersion,
	})
	if err != nil {
		return hello, err
	}
	f, err := agentproto.ReadFrame(conn, 4096)
	if err != nil {
		return hello, err
	}
	if err := f.Decode(agentproto.TypeHello, &hello); err != nil {
		return hello, err
	}
	if hello.Version < agentproto.MinVersion || hello.Version > agentproto.Version {
		return hello, fmt.Errorf("agent chose unsupported protocol version %d", hello.Version)
	}
	return hello, nil
}

// Hello returns the agent's handshake answer.
func (c *Client) Hello() agentproto.Hello { return c.hello }

// Streams is how many operation streams are open.
func (c *Client) Streams() int { return c.sess.NumStreams() }

// Close ends the session and its operations. It is idempotent.
func (c *Client) Close() error { return c.sess.Close() }

// Done is closed when the session has ended, by Close or a broken connection.
func (c *Client) Done() <-chan struct{} { return c.sess.CloseChan() }

// keepAliveInterval is how often the host pings an agent's session; an
// agent that does not answer within yamux's write timeout (10 s) ends it, and
// the next operation connects again. A dead agent's socket closes at once
// (no ping needed); the ping finds one that is alive but stuck. Every idle
// sandbox pays it (500 sandboxes at 10 s were 50 pings a second, each waking
// aetherd and an agent), so 30 s: a stuck agent is found within 40 s.
// A variable only so tests can shorten it.
var keepAliveInterval = 30 * time.Second

// MaxStreams is how many operation streams one agent connection may hold
// open at once; an operation beyond it fails with ErrUnavailable.
const MaxStreams = 64

// streamWindow is each stream's receive window: yamux's initial 256 KiB,
// never grown.
const streamWindow = 256 << 10

// open starts an operation stream and sends its request. The stream is closed
// when ctx ends, which makes the agent abandon the operation.
func (c *Client) open(ctx context.Context, req agentproto.Request) (*yamux.Stream, func(), error) {
	st, err := c.openStream(req)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { st.SetReadDeadline(time.Now()); st.Close() })
	return st, func() { stop(); st.Close() }, nil
}

// streamRoomWait is how long an operation waits for a stream of the
// connection's MaxStreams to end before it fails. With as many operations
// as streams in flight, a new one otherwise failed whenever the agent's
// close of an ended operation had not yet arrived (the 64-client exec load
// in one sandbox); a guest that never ends operations still fails them
// within the wait, and they do not pile up.
const streamRoomWait = time.Second

// waitStreamRoom returns the number of open streams once it is below
// MaxStreams, or after streamRoomWait.
func (c *Client) waitStreamRoom() int {
	n := c.sess.NumStreams()
	for deadline := time.Now().Add(streamRoomWait); n >= MaxStreams && time.Now().Before(deadline); n = c.sess.NumStreams() {
		time.Sleep(time.Millisecond)
	}
	return n
}

// openStream starts an operation stream and sends its request.
func (c *Client) openStream(req agentproto.Request) (*yamux.Stream, error) {
	if n := c.waitStreamRoom(); n >= MaxStreams {
		return nil, errdefs.Unavailable("agent holds %d operations open (at most %d): it is not ending them", n, MaxStreams)
	}
	st, err := c.sess.OpenStream()
	if err != nil {
		return nil, errdefs.Unavailable("agent connection lost: %v", err)
	}
	if err := agentproto.WriteJSON(st, agentproto.TypeRequest, req); err != nil {
		st.Close()
		return nil, errdefs.Unavailable("agent connection lost: %v", err)
	}
	return st, nil
}

// Health asks the agent whether it is serving.
func (c *Client) Health(ctx context.Context) (agentproto.Response, error) {
	var resp agentproto.Response
	st, done, err := c.open(ctx, agentproto.Request{Op: agentproto.OpHealth})
	if err != nil {
		return resp, err
	}
	defer done()
	f, err := agentproto.ReadFrame(st, 0)
	if err != nil {
		return resp, streamErr(ctx, err)
	}
	return resp, mapRemote(f.Decode(agentproto.TypeResponse, &resp))
}

// streamErr turns a broken stream into the cancellation that caused it, or an
// Unavailable error.
func streamErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errdefs.Unavailable("agent stream broken: %v", err)
}

// mapRemote gives agent errors their errdefs class.
func mapRemote(err error) error {
	var re *agentproto.RemoteError
	if !errors.As(err, &re) {
		return err
	}
	switch re.Code {
	case agentproto.CodeNotFound:
		return fmt.Errorf("%w: %s", errdefs.ErrNotFound, re.Message)
	case agentproto.CodeInvalidArgument:
		return fmt.Errorf("%w: %s", errdefs.ErrInvalidArgument, re.Message)
	case agentproto.CodePermission:
		return fmt.Errorf("%w: permission denied: %s", errdefs.ErrFailedPrecondition, re.Message)
	case agentproto.CodeUnavailable:
		return fmt.Errorf("%w: %s", errdefs.ErrUnavailable, re.Message)
	case agentproto.CodeConflict:
		return fmt.Errorf("%w: %s", errdefs.ErrConflict, re.Message)
	}
	return err
}

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/errdefs"
)

// Connect dials the sandbox's agent and completes the protocol handshake,
// retrying while the agent is not up yet, until ctx ends. A nil error means the
// sandbox is ready: this is the readiness check, there is no sleep.
func Connect(ctx context.Context, rt Runtime, id string) (*agentclient.Client, error) {
	delay := time.Millisecond
	for {
		c, err := connectOnce(ctx, rt, id)
		if err == nil {
			return c, nil
		}
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("sandbox %s agent not ready: %w (last error: %v)", id, ctx.Err(), err)
		case <-time.After(delay):
		}
		// Dialing a socket that is not there yet fails in microseconds, so
		// polling often is cheap and keeps readiness latency low.
		delay = min(delay*2, 5*time.Millisecond)
	}
}

// connectOnce dials and shakes hands, then proves the session with one
// health round trip. A byte stream without connection boundaries (a
// virtio-serial port) can answer a new connection's hello with the reply
// to an earlier, timed-out attempt's hello, whose bytes the agent then
// reads as the new session's first frames and fails on; the round trip
// catches that and the caller retries.
func connectOnce(ctx context.Context, rt Runtime, id string) (*agentclient.Client, error) {
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := rt.Dial(hctx, id)
	if err != nil {
		return nil, err
	}
	c, err := agentclient.Handshake(hctx, conn)
	if err != nil {
		return nil, err
	}
	if a, ok := rt.(AgentAdopter); ok {
		if err := a.AdoptAgent(hctx, id, conn, c.Hello()); err != nil {
			c.Close()
			return nil, err
		}
	}
	if _, err := c.Health(hctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Agents keeps one live agent connection per sandbox, so an exec costs a
// stream open, not a dial and handshake. Over a runtime that is an
// AgentIdler it closes a connection no operation used for its AgentIdle,
// and the next use connects again. It is safe for concurrent use.
type Agents struct {
	rt   Runtime
	idle time.Duration // 0: connections stay
	stop chan struct{}
	halt sync.Once
	mu   sync.Mutex
	m    map[string]*agentEntry
}

type agentEntry struct {
	once   chan struct{} // closed when client/err are set
	client *agentclient.Client
	err    error
	used   time.Time // under Agents.mu: last handed out, or last seen with an operation open
}

// NewAgents returns an empty connection cache over rt. Close stops it.
func NewAgents(rt Runtime) *Agents {
	a := &Agents{rt: rt, m: make(map[string]*agentEntry), stop: make(chan struct{})}
	if i, ok := rt.(AgentIdler); ok && i.AgentIdle() > 0 {
		a.idle = i.AgentIdle()
		go a.sweep()
	}
	return a
}

// Get returns a ready client for sandbox id, connecting (and waiting for
// readiness, bounded by ctx) if there is no live connection.
func (a *Agents) Get(ctx context.Context, id string) (*agentclient.Client, error) {
	for {
		a.mu.Lock()
		e, ok := a.m[id]
		if ok {
			select {
			case <-e.once:
				if e.err != nil || isDone(e.client) {
					delete(a.m, id)
					ok = false
				}
			default:
			}
		}
		if !ok {
			e = &agentEntry{once: make(chan struct{})}
			a.m[id] = e
			a.mu.Unlock()
			e.client, e.err = Connect(ctx, a.rt, id)
			a.touch(e)
			close(e.once)
			return e.client, e.err
		}
		a.mu.Unlock()
		select {
		case <-e.once:
			if a.handOut(id, e) {
				return e.client, nil
			}
			// The connection another caller made failed, died or was
			// closed as idle meanwhile: try again.
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// touch marks e used now, so the sweep leaves it for another a.idle: the
// caller opens its operation's stream right away.
func (a *Agents) touch(e *agentEntry) {
	a.mu.Lock()
	e.used = time.Now()
	a.mu.Unlock()
}

// handOut reports whether e, connected, may be handed out for id: it is
// still the cache's (the sweep did not take it) and alive; then it is
// marked used, under the lock the sweep decides under.
func (a *Agents) handOut(id string, e *agentEntry) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m[id] != e || e.err != nil || isDone(e.client) {
		return false
	}
	e.used = time.Now()
	return true
}

// sweep closes idle connections until Close.
func (a *Agents) sweep() {
	t := time.NewTicker(max(a.idle/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case now := <-t.C:
			a.closeIdle(now)
		}
	}
}

// closeIdle closes every connection with no operation open that has not
// been handed out for a.idle.
func (a *Agents) closeIdle(now time.Time) {
	var idle []*agentclient.Client
	a.mu.Lock()
	for id, e := range a.m {
		select {
		case <-e.once:
		default:
			continue // connecting
		}
		switch {
		case e.client == nil:
		case e.client.Streams() > 0:
			e.used = now
		case now.Sub(e.used) >= a.idle:
			delete(a.m, id)
			idle = append(idle, e.client)
		}
	}
	a.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}

// Forget closes and drops the connection to sandbox id (after a delete).
func (a *Agents) Forget(id string) {
	a.mu.Lock()
	e, ok := a.m[id]
	delete(a.m, id)
	a.mu.Unlock()
	if ok {
		go func() {
			<-e.once
			if e.client != nil {
				e.client.Close()
			}
		}()
	}
}

// Close closes every connection and stops the idle sweep.
func (a *Agents) Close() {
	a.halt.Do(func() { close(a.stop) })
	a.mu.Lock()
	ids := make([]string, 0, len(a.m))
	for id := range a.m {
		ids = append(ids, id)
	}
	a.mu.Unlock()
	for _, id := range ids {
		a.Forget(id)
	}
}

func isDone(c *agentclient.Client) bool {
	select {
	case <-c.Done():
		return true
	default:
		return false
	}
}

// DialUnix connects to the unix socket at path without following a symlink
// in its last element, and only if that is a socket: a guest that can write
// the socket's directory (Docker's bind-mounted agent dir) cannot point the
// host at another socket, such as dockerd's. The directory's own path is
// the host's and is trusted. The socket is reached through an O_PATH handle
// (/proc/self/fd/N), so no path outgrows sun_path's 108 bytes either.
func DialUnix(ctx context.Context, path string) (net.Conn, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, fmt.Errorf("%s is not a socket (a symlink or file put there from inside the sandbox?)", path)
	}
	var d net.Dialer
	return d.DialContext(ctx, "unix", fmt.Sprintf("/proc/self/fd/%d", fd))
}

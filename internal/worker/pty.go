package worker

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/cluster"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
)

// Pty starts req on a new pseudo-terminal in the sandbox. The sandbox counts
// as active until the terminal is closed. A program that is not there is
// ErrInvalidArgument.
func (w *Worker) Pty(ctx context.Context, vm *store.VM, req *agentproto.PtyRequest) (cluster.Terminal, error) {
	c, err := w.runningAgent(ctx, vm)
	if err != nil {
		return nil, err
	}
	end := w.begin(ctx, vm)
	p, err := c.Pty(ctx, req)
	if err != nil {
		end()
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil, errdefs.InvalidArgument("command %q not found in sandbox %s", req.Argv[0], vm.Name)
		}
		return nil, err
	}
	return &terminal{Pty: p, end: end}, nil
}

// terminal ends the sandbox's activity when it is closed.
type terminal struct {
	*agentclient.Pty
	end  func()
	once sync.Once
}

func (t *terminal) Close() error {
	t.once.Do(t.end)
	return t.Pty.Close()
}

// Dial connects to 127.0.0.1:port inside the sandbox. The sandbox counts as
// active until the connection is closed.
func (w *Worker) Dial(ctx context.Context, vm *store.VM, port int) (net.Conn, error) {
	c, err := w.runningAgent(ctx, vm)
	if err != nil {
		return nil, err
	}
	end := w.begin(ctx, vm)
	conn, err := c.Dial(ctx, port)
	if err != nil {
		end()
		if errors.Is(err, errdefs.ErrUnavailable) {
			return nil, errdefs.Unavailable("sandbox %s: nothing listens on port %d", vm.Name, port)
		}
		return nil, err
	}
	return &portConn{Conn: conn, end: end}, nil
}

// portConn ends the sandbox's activity when it is closed.
type portConn struct {
	net.Conn
	end  func()
	once sync.Once
}

func (c *portConn) Close() error {
	c.once.Do(c.end)
	return c.Conn.Close()
}

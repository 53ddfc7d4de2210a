package sandbox_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/agent"
	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/sandbox"
)

// agentRuntime dials an in-process agent; only Dial is ever called.
type agentRuntime struct {
	sandbox.Runtime
	path string
}

func (r agentRuntime) Dial(ctx context.Context, id string) (net.Conn, error) {
	return sandbox.DialUnix(ctx, r.path)
}

// idleRuntime is an AgentIdler.
type idleRuntime struct {
	agentRuntime
	idle time.Duration
}

func (r idleRuntime) AgentIdle() time.Duration { return r.idle }

func serveAgent(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go agent.New(agent.Config{}).Serve(ctx, l)
	return path
}

func closedWithin(c *agentclient.Client, d time.Duration) bool {
	select {
	case <-c.Done():
		return true
	case <-time.After(d):
		return false
	}
}

// TestAgentsCloseIdle: over an AgentIdler, a connection no operation uses
// for its AgentIdle is closed (so a Docker agent can go dormant), never one
// with an operation open, and the next Get connects again; over another
// runtime connections stay.
func TestAgentsCloseIdle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := serveAgent(t)
	// An idle period well above a loaded host's scheduling delays: Get
	// marks the connection used, and the exec opens its stream after.
	a := sandbox.NewAgents(idleRuntime{agentRuntime{path: path}, 400 * time.Millisecond})
	defer a.Close()
	c, err := a.Get(ctx, "sb")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, &agentproto.ExecRequest{Argv: []string{"sleep", "2"}}, agentclient.ExecIO{})
		done <- err
	}()
	if closedWithin(c, 1500*time.Millisecond) {
		t.Fatal("a connection with an exec open was closed as idle")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !closedWithin(c, 5*time.Second) {
		t.Fatal("an idle connection is still open 5 s after its last operation")
	}
	again, err := a.Get(ctx, "sb")
	if err != nil || again == c {
		t.Fatalf("Get after the idle close: %p, %v; want a new connection", again, err)
	}
	if _, err := again.Health(ctx); err != nil {
		t.Fatal(err)
	}

	keep := sandbox.NewAgents(agentRuntime{path: path})
	defer keep.Close()
	k, err := keep.Get(ctx, "sb")
	if err != nil {
		t.Fatal(err)
	}
	if closedWithin(k, 500*time.Millisecond) {
		t.Error("a connection over a runtime that is no AgentIdler was closed")
	}
}

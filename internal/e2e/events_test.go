package e2e_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
)

// collectEvents follows the API's event stream in the background.
type collector struct {
	mu  sync.Mutex
	got []*apiv1.Event
}

func collectEvents(t *testing.T, c *client.Client, kind, vm string) *collector {
	col := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ready := make(chan struct{})
	go c.Events(ctx, kind, vm, "", func(e *apiv1.Event) error {
		col.mu.Lock()
		col.got = append(col.got, e)
		col.mu.Unlock()
		return nil
	})
	// The stream is live once the server answered; give it a moment.
	go func() { time.Sleep(300 * time.Millisecond); close(ready) }()
	<-ready
	return col
}

// waitFor waits until an event matching pred arrived.
func (col *collector) waitFor(t *testing.T, what string, pred func(*apiv1.Event) bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		col.mu.Lock()
		for _, e := range col.got {
			if pred(e) {
				col.mu.Unlock()
				return
			}
		}
		col.mu.Unlock()
	}
	t.Errorf("no event: %s", what)
}

// TestEventsAcrossProcesses: a worker process changes state, the api process
// streams it (Redis pub/sub in between), with filters applied.
func TestEventsAcrossProcesses(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1)
	all := collectEvents(t, c.c, "", "")
	tasksOnly := collectEvents(t, c.c, "task", "")
	vm := c.MustCreateVM(&client.CreateVMRequest{Name: "ev"})
	all.waitFor(t, "vm running", func(e *apiv1.Event) bool { return e.Kind == "vm" && e.VMID == vm.ID && e.Status == "running" })
	all.waitFor(t, "create task succeeded", func(e *apiv1.Event) bool {
		return e.Kind == "task" && e.TaskType == "vm:create" && e.Status == "succeeded" && e.VMID == vm.ID
	})
	tasksOnly.waitFor(t, "create task running", func(e *apiv1.Event) bool { return e.TaskType == "vm:create" && e.Status == "running" })
	tasksOnly.mu.Lock()
	for _, e := range tasksOnly.got {
		if e.Kind != "task" {
			t.Errorf("kind=task stream delivered %+v", e)
		}
	}
	tasksOnly.mu.Unlock()
}

// TestEventsCLI follows `aether events --vm X` while the sandbox is deleted.
func TestEventsCLI(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	e.MustCreateVM(&client.CreateVMRequest{Name: "watched"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.cli, "events", "--vm", "watched", "-o", "json")
	cmd.Env = append(e.cliEnv(), "AETHER_SERVER=http://"+e.addr)
	out := &syncBuffer{}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := e.c.DeleteVM(ctx, "watched"); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(out.String(), `"status":"deleted"`) {
		if ctx.Err() != nil {
			t.Fatalf("aether events printed no deleted event: %q", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := cmd.Wait(); err != nil && !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("aether events: %v", err)
	}
	if !strings.Contains(out.String(), `"status":"deleting"`) {
		t.Errorf("events lack the deleting transition: %q", out.String())
	}
}

// TestShutdownEndsEventStreams guards against SIGTERM waiting the whole
// shutdown timeout for event streams that never end by themselves.
func TestShutdownEndsEventStreams(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	collectEvents(t, e.c, "", "")
	start := time.Now()
	e.stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("SIGTERM with an open event stream took %s", d)
	}
	e.start()
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

package agent

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
)

// forcedGCs counts the process's forced collections (debug.FreeOSMemory,
// runtime.GC).
func forcedGCs() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// waitForcedGC waits until the process has forced a collection since
// before, failing t after a generous deadline.
func waitForcedGC(t *testing.T, before uint64) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); forcedGCs() == before; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the idle agent never returned its free heap (no forced collection)")
		}
	}
}

// sink keeps the compiler from eliding the garbage a test makes.
var sink []byte

// The tests here are not parallel: they watch the process-wide count of
// forced collections, which another test's trim would move.

// TestIdleAgentReturnsFreeHeap: after a command whose output leaves
// megabytes of garbage in the agent, the agent collects and returns free
// memory once no stream is open, instead of holding it while the sandbox
// idles (issue 13: host memory per idle sandbox).
func TestIdleAgentReturnsFreeHeap(t *testing.T) {
	srv := New(Config{Version: "test", IdleTrim: 10 * time.Millisecond})
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx, l)
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c, err := agentclient.Handshake(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Health(ctx); err != nil { // the host's connect check, as sandbox.Connect does
		t.Fatal(err)
	}
	before := forcedGCs()
	exit, err := c.Exec(ctx, &agentproto.ExecRequest{Argv: []string{"head", "-c", "4194304", "/dev/zero"}}, agentclient.ExecIO{Stdout: io.Discard})
	if err != nil || exit.ExitCode != 0 {
		t.Fatalf("exec: %+v %v", exit, err)
	}
	waitForcedGC(t, before)
}

// TestTrimWaitsForTheLastStream: no trim while any stream is open; the
// last one's end arms it.
func TestTrimWaitsForTheLastStream(t *testing.T) {
	sink = make([]byte, 4<<20) // garbage above trimAbove, whatever else the test process holds
	sink = nil
	tr := newTrimmer(time.Millisecond)
	tr.begin()
	tr.begin()
	before := forcedGCs()
	tr.end()
	time.Sleep(100 * time.Millisecond) // a hundred trim delays
	if n := forcedGCs(); n != before {
		t.Fatalf("%d forced collections with a stream still open", n-before)
	}
	tr.end()
	waitForcedGC(t, before)
}

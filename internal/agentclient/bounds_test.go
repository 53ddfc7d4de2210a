package agentclient_test

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/errdefs"
)

// badGuest is a test double of a hostile agent on one connection: it
// handshakes, then hands every stream the host opens to serve.
func badGuest(conn net.Conn, serve func(st *yamux.Stream)) {
	defer conn.Close()
	if _, err := agentproto.ReadFrame(conn, 4096); err != nil {
		return
	}
	agentproto.WriteJSON(conn, agentproto.TypeHello, agentproto.Hello{Version: agentproto.Version, MinVersion: agentproto.MinVersion})
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	sess, err := yamux.Server(conn, cfg)
	if err != nil {
		return
	}
	defer sess.Close()
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			return
		}
		go serve(st)
	}
}

// TestClosedSessionsFreeMemory guards the leak the hostile-agent e2e suite
// found (issue 10): a guest answering each reconnect's health check with
// garbage it never stops sending made yamux's stream close timer keep every
// closed session, with its buffers, alive for 5 minutes — gigabytes within
// the 30 s readiness wait. Closed sessions must now be collectable. Not
// parallel: it measures the process's heap, so it runs while no other test
// of the package does.
func TestClosedSessionsFreeMemory(t *testing.T) {
	for range 1000 {
		h, g := net.Pipe()
		go badGuest(g, func(st *yamux.Stream) {
			agentproto.ReadFrame(st, 0)
			io.CopyN(st, rand.Reader, 1<<20)
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := agentclient.Handshake(ctx, h)
		if err == nil {
			_, err = c.Health(ctx)
			c.Close()
		}
		cancel()
		if err == nil {
			t.Fatal("health answered with garbage succeeded")
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapInuse > 64<<20 {
		t.Errorf("after 1000 closed garbage sessions the heap holds %d MiB, want them freed", ms.HeapInuse>>20)
	}
}

// TestMaxStreams: a guest that never ends operations can hold at most
// MaxStreams streams (each at most one window of buffered data); further
// operations fail with ErrUnavailable (after streamRoomWait) instead of
// piling up.
func TestMaxStreams(t *testing.T) {
	t.Parallel()
	h, g := net.Pipe()
	go badGuest(g, func(st *yamux.Stream) {
		agentproto.ReadFrame(st, 0)
		io.CopyN(st, rand.Reader, 512<<10) // fill the window, never close
		select {}
	})
	c, err := agentclient.Handshake(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range agentclient.MaxStreams {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		if _, err := c.Health(ctx); err == nil {
			t.Fatalf("health %d on a garbage stream succeeded", i)
		}
		cancel()
	}
	_, err = c.Health(context.Background())
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "operations open") {
		t.Errorf("operation beyond MaxStreams: %v, want ErrUnavailable", err)
	}
}

// TestListBounds: a hostile agent answering a listing with entries of
// near-1 MiB names is refused at the first one, and one sending endless
// frames of small entries is cut at the byte budget (truncated), so a
// listing never holds more than that budget of the guest's bytes.
func TestListBounds(t *testing.T) {
	listing := func(t *testing.T, frame func(i int) []byte) (*agentclient.DirListing, error, int) {
		h, g := net.Pipe()
		sent := make(chan int, 1)
		go badGuest(g, func(st *yamux.Stream) {
			agentproto.ReadFrame(st, 0)
			n := 0
			for ; n < 1000; n++ {
				if agentproto.WriteFrame(st, agentproto.TypeData, frame(n)) != nil {
					break
				}
			}
			sent <- n
			st.Close()
		})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := agentclient.Handshake(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		l, err := c.List(ctx, "/")
		c.Close()
		return l, err, <-sent
	}
	huge := `[{"name":"` + strings.Repeat("a", 1000<<10) + `","type":"file"}]`
	if l, err, _ := listing(t, func(int) []byte { return []byte(huge) }); err == nil {
		t.Errorf("a 1000 KiB name was accepted: %d entries", len(l.Entries))
	}
	small := `[` + strings.Repeat(`{"name":"x","type":"file"},`, 30000) + `{"name":"x","type":"file"}]`
	l, err, frames := listing(t, func(int) []byte { return []byte(small) })
	if err != nil {
		t.Fatal(err)
	}
	if !l.Truncated || len(l.Entries) > agentproto.MaxListEntries || frames >= 1000 {
		t.Errorf("endless small entries: %d entries, truncated %v, %d frames read; want a cut listing", len(l.Entries), l.Truncated, frames)
	}
}

// TestStuckAgentEndsTheSession: an agent that is alive but no longer answers
// (its socket stays open, what the host sends is read and dropped) must end
// the host's session through the keepalive ping, so the connection cache
// stops handing it out and the next operation connects again. A dead
// agent's socket closes by itself; this is the case only the ping finds.
// The guest is a test double: a real agent cannot be made to hang on cue.
func TestStuckAgentEndsTheSession(t *testing.T) {
	t.Parallel()
	h, g := net.Pipe()
	defer g.Close()
	go func() {
		if _, err := agentproto.ReadFrame(g, 4096); err != nil {
			return
		}
		agentproto.WriteJSON(g, agentproto.TypeHello, agentproto.Hello{Version: agentproto.Version, MinVersion: agentproto.MinVersion})
		io.Copy(io.Discard, g) // stuck: reads, never answers
	}()
	c, err := agentclient.Handshake(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-c.Done():
	case <-time.After(time.Minute):
		t.Fatal("the session to an agent that stopped answering stayed open")
	}
}

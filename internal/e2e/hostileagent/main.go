// Command hostileagent is a TEST DOUBLE: an aether-agent that misbehaves on
// purpose, so the end-to-end tests can show that aetherd survives a hostile
// guest (issue 10). It is never shipped; only internal/e2e builds it, as the
// agent_path of a test aetherd.
//
// It takes aether-agent's --listen unix:PATH. While the file hostile-mode
// beside the socket is absent it is the real agent (package agent), so the
// sandbox is created and becomes ready as usual; once the test writes a mode
// there, the current connections are dropped (then hostile-mode.ack is
// written) and every later connection misbehaves that way:
//
//   - silent: never answers, not even the handshake
//   - hello-huge: answers the hello with a frame header claiming 4 GiB
//   - garbage-health: handshakes, then answers health with garbage bytes
//   - streams: handshakes, then opens thousands of streams to the host
//   - flood: exec answers with endless 1 MiB stdout frames, never an exit
//   - bigframe: exec answers with a stdout frame header claiming ~4 GiB
//   - mute: exec is accepted and never answered
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/aetherium/aetherium/internal/agent"
	"github.com/aetherium/aetherium/internal/agentproto"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hostileagent:", err)
		os.Exit(1)
	}
}

func run() error {
	path := "/run/aether/agent.sock"
	for i, a := range os.Args {
		if a == "--listen" && i+1 < len(os.Args) {
			path = strings.TrimPrefix(os.Args[i+1], "unix:")
		}
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	modeFile := filepath.Join(filepath.Dir(path), "hostile-mode")
	mode := func() string {
		b, _ := os.ReadFile(modeFile)
		return strings.TrimSpace(string(b))
	}
	srv := agent.New(agent.Config{Version: "hostile-test-double", Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	ctx := context.Background()
	var mu sync.Mutex
	normal := map[net.Conn]bool{}
	go func() { // once a mode is set: drop the well-behaved connections, then say so
		for mode() == "" {
			time.Sleep(20 * time.Millisecond)
		}
		mu.Lock()
		for c := range normal {
			c.Close()
		}
		mu.Unlock()
		os.WriteFile(modeFile+".ack", nil, 0o644)
	}()
	for {
		conn, err := l.Accept()
		if err != nil {
			return err
		}
		mu.Lock()
		m := mode()
		if m == "" {
			normal[conn] = true
		}
		mu.Unlock()
		if m == "" {
			go srv.ServeConn(ctx, conn)
			continue
		}
		go misbehave(conn, m)
	}
}

func misbehave(conn net.Conn, mode string) {
	defer conn.Close()
	switch mode {
	case "silent":
		io.Copy(io.Discard, conn)
		return
	case "hello-huge":
		agentproto.ReadFrame(conn, 4096)
		header(conn, agentproto.TypeHello, 0xFFFFFFFF)
		io.Copy(conn, rand.Reader)
		return
	}
	if _, err := agentproto.ReadFrame(conn, 4096); err != nil {
		return
	}
	agentproto.WriteJSON(conn, agentproto.TypeHello, agentproto.Hello{Version: agentproto.Version, MinVersion: agentproto.MinVersion})
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	cfg.EnableKeepAlive = false
	sess, err := yamux.Server(conn, cfg)
	if err != nil {
		return
	}
	defer sess.Close()
	if mode == "streams" {
		go func() {
			for range 5000 {
				st, err := sess.OpenStream()
				if err != nil {
					return
				}
				go io.CopyN(st, rand.Reader, 256<<10) // fill the receive window
			}
		}()
	}
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			return
		}
		go serveStream(st, mode)
	}
}

func serveStream(st net.Conn, mode string) {
	defer st.Close()
	f, err := agentproto.ReadFrame(st, 0)
	if err != nil {
		return
	}
	var req agentproto.Request
	if f.Decode(agentproto.TypeRequest, &req) != nil {
		return
	}
	switch {
	case req.Op == agentproto.OpHealth && mode == "garbage-health":
		io.CopyN(st, rand.Reader, 1<<20)
	case req.Op == agentproto.OpHealth:
		agentproto.WriteJSON(st, agentproto.TypeResponse, agentproto.Response{})
	case mode == "flood":
		chunk := make([]byte, agentproto.MaxPayload)
		for agentproto.WriteFrame(st, agentproto.TypeStdout, chunk) == nil {
		}
	case mode == "bigframe":
		header(st, agentproto.TypeStdout, 0xFFFFFFF0)
		io.Copy(st, rand.Reader)
	case mode == "mute":
		io.Copy(io.Discard, st)
	default:
		agentproto.WriteJSON(st, agentproto.TypeError, agentproto.RemoteError{Message: "hostile agent: " + mode})
	}
}

// header writes a frame header claiming n payload bytes.
func header(w io.Writer, t agentproto.FrameType, n uint32) {
	var h [agentproto.HeaderSize]byte
	h[0] = byte(t)
	binary.BigEndian.PutUint32(h[1:], n)
	w.Write(h[:])
}

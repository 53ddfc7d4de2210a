package agentclient_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/errdefs"
)

// lockedBuffer collects a terminal's output for waitFor.
type lockedBuffer struct {
	mu  sync.Mutex
	b   strings.Builder
	new chan struct{}
}

func readAll(t *testing.T, r io.Reader) *lockedBuffer {
	lb := &lockedBuffer{new: make(chan struct{}, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			lb.mu.Lock()
			lb.b.Write(buf[:n])
			lb.mu.Unlock()
			select {
			case lb.new <- struct{}{}:
			default:
			}
			if err != nil {
				close(lb.new)
				return
			}
		}
	}()
	return lb
}

// waitFor waits until the output contains want; the output ending first
// fails the test.
func (lb *lockedBuffer) waitFor(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		lb.mu.Lock()
		got := lb.b.String()
		lb.mu.Unlock()
		if strings.Contains(got, want) {
			return
		}
		select {
		case _, ok := <-lb.new:
			if !ok {
				t.Fatalf("output ended without %q: %q", want, got)
			}
		case <-timeout:
			t.Fatalf("no %q in the output within 20s: %q", want, got)
		}
	}
}

func (lb *lockedBuffer) wait(t *testing.T) {
	t.Helper()
	for range lb.new {
	}
}

// TestPty runs a shell on the real agent's pseudo-terminal: it echoes typed
// input (a terminal, not a pipe), a resize reaches `stty size`, Ctrl-C
// interrupts the foreground command, a Signal frame reaches it too, and the
// exit code comes back.
func TestPty(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	p, err := c.Pty(context.Background(), &agentproto.PtyRequest{Argv: []string{"sh"}, Cols: 100, Rows: 30, Env: []string{"PS1=$ "}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	out := readAll(t, p)
	type step struct {
		do   func() error
		want string
	}
	typed := func(s string) func() error { return func() error { _, err := io.WriteString(p, s); return err } }
	steps := []step{
		{typed("tty; stty size\n"), "/dev/pts/"},
		{nil, "30 100"},
		{func() error { return p.Resize(132, 43) }, ""},
		{typed("stty size\n"), "43 132"},
		// The inner sh dies of the signal before or after its exec: 128+n
		// either way. (Ctrl-C typed ahead would be flushed with the line,
		// and an interactive shell abandons the rest of an interrupted line.)
		{typed("sh -c 'echo st\"\"arted; exec sleep 100'\n"), "started"},
		{typed("\x03"), "^C"},
		{typed("echo after=$?\n"), "after=130"},
		{typed("sh -c 'echo re\"\"ady; exec sleep 100'; echo signalled=$?\n"), "ready"},
		{func() error { return p.Signal(int(syscall.SIGTERM)) }, "signalled=143"},
		{typed("exit 3\n"), ""},
	}
	for _, s := range steps {
		if s.do != nil {
			if err := s.do(); err != nil {
				t.Fatal(err)
			}
		}
		if s.want != "" {
			out.waitFor(t, s.want)
		}
	}
	out.wait(t)
	exit, err := p.Wait()
	if err != nil || exit.ExitCode != 3 {
		t.Fatalf("exit = %+v, %v; want code 3", exit, err)
	}
}

// TestPtyClose: closing the terminal kills what runs on it.
func TestPtyClose(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	p, err := c.Pty(context.Background(), &agentproto.PtyRequest{Argv: []string{"sh", "-c", "echo pid=$$.; exec sleep 1000"}})
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(p).ReadString('.')
	var pid int
	if _, serr := fmt.Sscanf(line, "pid=%d.", &pid); err != nil || serr != nil {
		t.Fatalf("read %q: %v %v", line, err, serr)
	}
	p.Close()
	for deadline := time.Now().Add(30 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs 30s after the terminal closed", pid)
		}
	}
}

func TestPtyStartErrors(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	tests := []struct {
		name string
		argv []string
		want error
	}{
		{"not found", []string{"no-such-program"}, errdefs.ErrNotFound},
		{"empty", nil, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Pty(context.Background(), &agentproto.PtyRequest{Argv: tt.argv})
			if !errors.Is(err, tt.want) {
				t.Errorf("Pty(%q) = %v, want %v", tt.argv, err, tt.want)
			}
		})
	}
}

// TestDial: a dialed stream reaches a server on the guest's loopback, both
// ways; a port nobody listens on is ErrUnavailable.
func TestDial(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				line, _ := bufio.NewReader(conn).ReadString('\n')
				io.WriteString(conn, strings.ToUpper(line))
			}()
		}
	}()
	conn, err := c.Dial(context.Background(), l.Addr().(*net.TCPAddr).Port)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "hello\n")
	got, err := io.ReadAll(conn)
	conn.Close()
	if err != nil || string(got) != "HELLO\n" {
		t.Errorf("read %q, %v; want HELLO", got, err)
	}
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	port := free.Addr().(*net.TCPAddr).Port
	free.Close()
	if _, err := c.Dial(context.Background(), port); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("dial of a closed port = %v, want ErrUnavailable", err)
	}
	if _, err := c.Dial(context.Background(), 70000); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("dial of port 70000 = %v, want ErrInvalidArgument", err)
	}
}

// TestOldAgentRefusesNewOps: against an agent that negotiates protocol
// version 1, the host refuses pty and dial itself, as not implemented.
func TestOldAgentRefusesNewOps(t *testing.T) {
	t.Parallel()
	h, g := net.Pipe()
	go func() {
		defer g.Close()
		agentproto.ReadFrame(g, 4096)
		agentproto.WriteJSON(g, agentproto.TypeHello, agentproto.Hello{Version: 1, MinVersion: 1})
		cfg := yamux.DefaultConfig()
		cfg.LogOutput = io.Discard
		sess, err := yamux.Server(g, cfg)
		if err != nil {
			return
		}
		for {
			st, err := sess.AcceptStream()
			if err != nil {
				return
			}
			t.Errorf("the host opened a stream on a version 1 agent")
			st.Close()
		}
	}()
	c, err := agentclient.Handshake(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Pty(context.Background(), &agentproto.PtyRequest{Argv: []string{"sh"}}); !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("Pty on a v1 agent = %v, want ErrNotImplemented", err)
	}
	if _, err := c.Dial(context.Background(), 80); !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("Dial on a v1 agent = %v, want ErrNotImplemented", err)
	}
}

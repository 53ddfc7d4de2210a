package agentclient_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/aetherium/aetherium/internal/agent"
	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/errdefs"
)

// srv is shared: the agent's reaper owns SIGCHLD for the whole test process.
var srv = agent.New(agent.Config{Version: "test"})

// newClient starts the real agent server on a unix socket and connects to it.
func newClient(t *testing.T) *agentclient.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go srv.Serve(ctx, l)
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c, err := agentclient.Handshake(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); cancel() })
	return c
}

func run(t *testing.T, c *agentclient.Client, req *agentproto.ExecRequest, stdin io.Reader) (string, string, *agentproto.Exit, error) {
	t.Helper()
	var out, errb bytes.Buffer
	exit, err := c.Exec(context.Background(), req, agentclient.ExecIO{Stdin: stdin, Stdout: &out, Stderr: &errb})
	return out.String(), errb.String(), exit, err
}

func TestHandshake(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	if h := c.Hello(); h.Version != agentproto.Version || h.Agent != "test" {
		t.Errorf("hello = %+v", h)
	}
}

func TestExec(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	tests := []struct {
		name             string
		req              agentproto.ExecRequest
		stdin            string
		wantOut, wantErr string
		wantCode         int
		wantSignal       string
	}{
		{name: "stdout", req: agentproto.ExecRequest{Argv: []string{"echo", "hi"}}, wantOut: "hi\n"},
		{name: "stderr and code", req: agentproto.ExecRequest{Argv: []string{"sh", "-c", "echo oops >&2; exit 3"}}, wantErr: "oops\n", wantCode: 3},
		{name: "env and cwd", req: agentproto.ExecRequest{Argv: []string{"sh", "-c", "echo $FOO; pwd"}, Env: []string{"FOO=bar"}, Cwd: "/tmp"}, wantOut: "bar\n/tmp\n"},
		{name: "stdin", req: agentproto.ExecRequest{Argv: []string{"tr", "a-z", "A-Z"}}, stdin: "hello", wantOut: "HELLO"},
		{name: "signal", req: agentproto.ExecRequest{Argv: []string{"sh", "-c", "kill -TERM $$"}}, wantCode: -1, wantSignal: "SIGTERM"},
		{name: "background child does not hold the stream", req: agentproto.ExecRequest{Argv: []string{"sh", "-c", "sleep 30 & echo started"}}, wantOut: "started\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdin io.Reader
			if tt.stdin != "" {
				stdin = strings.NewReader(tt.stdin)
			}
			out, errs, exit, err := run(t, c, &tt.req, stdin)
			if err != nil {
				t.Fatalf("Exec(%v) error: %v", tt.req.Argv, err)
			}
			if out != tt.wantOut || errs != tt.wantErr || exit.ExitCode != tt.wantCode || exit.Signal != tt.wantSignal {
				t.Errorf("Exec(%v) = out %q err %q exit %+v; want out %q err %q code %d signal %q",
					tt.req.Argv, out, errs, exit, tt.wantOut, tt.wantErr, tt.wantCode, tt.wantSignal)
			}
		})
	}
}

func TestExecTimeoutKillsGroup(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	start := time.Now()
	_, _, exit, err := run(t, c, &agentproto.ExecRequest{Argv: []string{"sh", "-c", "sleep 60 & sleep 60"}, TimeoutMS: 300}, nil)
	var te *agentclient.ExecTimeoutError
	if !errors.As(err, &te) || !errors.Is(err, errdefs.ErrTimeout) {
		t.Fatalf("err = %v, want ExecTimeoutError", err)
	}
	if exit == nil || !exit.TimedOut || exit.Signal != "SIGKILL" {
		t.Errorf("exit = %+v, want timed out by SIGKILL", exit)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout took %s", d)
	}
}

func TestExecCancelKills(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	marker := filepath.Join(t.TempDir(), "survived")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := c.Exec(ctx, &agentproto.ExecRequest{Argv: []string{"sh", "-c", "sleep 1; touch " + marker}}, agentclient.ExecIO{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	time.Sleep(1500 * time.Millisecond)
	_, _, exit, _ := run(t, c, &agentproto.ExecRequest{Argv: []string{"test", "-e", marker}}, nil)
	if exit.ExitCode == 0 {
		t.Errorf("process kept running after its exec was cancelled")
	}
}

func TestExecNotFound(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	_, _, _, err := run(t, c, &agentproto.ExecRequest{Argv: []string{"no-such-program-xyz"}}, nil)
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound", err)
	}
}

// TestConcurrentLargeExecs runs 32 execs at once on one connection, each
// producing 2 MiB, and checks every byte arrives on the right stream.
func TestConcurrentLargeExecs(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	const n, size = 32, 2 << 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			script := fmt.Sprintf("head -c %d /dev/zero | tr '\\0' '%c'; echo done%d >&2", size, 'a'+i%26, i)
			out, errOut, exit, err := run(t, c, &agentproto.ExecRequest{Argv: []string{"sh", "-c", script}}, nil)
			switch {
			case err != nil:
				errs <- err
			case exit.ExitCode != 0 || len(out) != size || strings.Trim(out, string(rune('a'+i%26))) != "" || errOut != fmt.Sprintf("done%d\n", i):
				errs <- fmt.Errorf("exec %d: %d bytes, stderr %q, exit %+v", i, len(out), errOut, exit)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestFileRoundTrip(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := context.Background()
	data := make([]byte, 5<<20+123)
	rand.Read(data)
	path := filepath.Join(t.TempDir(), "sub", "blob.bin")
	n, err := c.PutFile(ctx, &agentproto.FilePutRequest{Path: path, Mode: 0o600, MkdirAll: true}, bytes.NewReader(data))
	if err != nil || n != int64(len(data)) {
		t.Fatalf("PutFile = %d, %v", n, err)
	}
	fr, err := c.GetFile(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	got, err := io.ReadAll(fr)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) || fr.Mode != 0o600 {
		t.Errorf("round trip: %d bytes mode %o, want %d bytes mode 600", len(got), fr.Mode, len(data))
	}
}

func TestFileErrors(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := context.Background()
	if _, err := c.GetFile(ctx, "/no/such/file"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("GetFile missing: %v, want ErrNotFound", err)
	}
	if _, err := c.PutFile(ctx, &agentproto.FilePutRequest{Path: "relative"}, strings.NewReader("x")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("PutFile relative: %v, want ErrInvalidArgument", err)
	}
	if _, err := c.GetFile(ctx, "/"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("GetFile dir: %v, want ErrInvalidArgument", err)
	}
}

// hostileAgent is a TEST DOUBLE of a compromised guest agent: it answers the
// handshake, then opens streams toward the host and fills them.
func hostileAgent(t *testing.T, conn net.Conn, streams int) {
	t.Helper()
	if _, err := agentproto.ReadFrame(conn, 4096); err != nil {
		t.Errorf("hostile agent: read hello: %v", err)
		return
	}
	if err := agentproto.WriteJSON(conn, agentproto.TypeHello, agentproto.Hello{Version: agentproto.Version, Agent: "hostile"}); err != nil {
		t.Errorf("hostile agent: write hello: %v", err)
		return
	}
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	sess, err := yamux.Server(conn, cfg)
	if err != nil {
		return
	}
	junk := bytes.Repeat([]byte("x"), 64<<10)
	for range streams {
		st, err := sess.OpenStream()
		if err != nil {
			return // the host ended the session: what we want
		}
		go st.Write(junk)
	}
}

// TestGuestOpenedStreamsEndTheSession guards against a guest pinning host
// memory by opening streams the host never accepts (yamux's backlog of 256,
// each with a 256 KiB window: 64 MiB per sandbox).
func TestGuestOpenedStreamsEndTheSession(t *testing.T) {
	t.Parallel()
	host, guest := net.Pipe()
	go hostileAgent(t, guest, 1000)
	c, err := agentclient.Handshake(context.Background(), host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-c.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the session survived a guest opening streams toward the host")
	}
}

// TestExecFindsProgramAsItsEnvironmentWould: a relative program path is
// taken from the command's cwd and a bare name from its environment's PATH,
// not the agent's (a "shell":false exec of ./run.sh in /app, or of a tool on
// a PATH the request sets, ran nothing and answered not found).
func TestExecFindsProgramAsItsEnvironmentWould(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "run-me"), []byte("#!/bin/sh\necho ran \"$0\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, req := range map[string]*agentproto.ExecRequest{
		"relative to cwd":   {Argv: []string{"./run-me"}, Cwd: dir},
		"on the env PATH":   {Argv: []string{"run-me"}, Env: []string{"PATH=/nonexistent:" + dir}},
		"relative PATH dir": {Argv: []string{"run-me"}, Cwd: filepath.Dir(dir), Env: []string{"PATH=" + filepath.Base(dir)}},
	} {
		out, _, exit, err := run(t, c, req, nil)
		if err != nil || exit.ExitCode != 0 || !strings.HasPrefix(out, "ran ") {
			t.Errorf("%s: out %q exit %+v err %v", name, out, exit, err)
		}
	}
	if _, _, _, err := run(t, c, &agentproto.ExecRequest{Argv: []string{"run-me"}, Env: []string{"PATH=/nonexistent"}}, nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a name on no PATH directory: err = %v, want ErrNotFound", err)
	}
}

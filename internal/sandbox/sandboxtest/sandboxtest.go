// Package sandboxtest is the conformance suite every sandbox.Runtime must
// pass: the Docker runtime against a real dockerd, microVM runtimes against a
// real hypervisor. Runtimes call Run from their own tests.
package sandboxtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/sandbox"
)

// Options tells the suite how to use the runtime under test.
type Options struct {
	// Image is an image reference the runtime can create sandboxes from. The
	// image needs a POSIX shell with coreutils.
	Image string
	// ReadyTimeout bounds create plus agent readiness; 0 means 60s.
	ReadyTimeout time.Duration
	// Parallel is how many cases run at once, at most; 0 means all of them.
	// Runtimes whose machines are expensive to boot (software-emulated VMs
	// on a small host) set a small number.
	Parallel int
}

// Run runs the suite against the runtime newRuntime returns. Cases that
// leave a sandbox as they found it share one sandbox (see testOneSandbox);
// every other case makes its own.
func Run(t *testing.T, newRuntime func(t *testing.T) sandbox.Runtime, opts Options) {
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 60 * time.Second
	}
	rt := newRuntime(t)
	h := &harness{rt: rt, opts: opts}
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"CreateExecDelete", testCreateExecDelete},
		{"OneSandbox", testOneSandbox},
		{"StopStart", testStopStart},
		{"CommitMakesImage", testCommit},
		{"TwoSandboxesAtOnce", testTwo},
		{"MemoryLimitKillsWorkloadNotAgent", testMemoryLimit},
		{"PauseResumeKeepsState", testPauseResume},
		{"NotFound", testNotFound},
	}
	slots := make(chan struct{}, len(tests))
	if opts.Parallel > 0 {
		slots = make(chan struct{}, opts.Parallel)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			slots <- struct{}{}
			t.Cleanup(func() { <-slots }) // after the case's own cleanups: its sandboxes are gone
			tt.fn(t, h)
		})
	}
}

// testOneSandbox runs, one after another on one sandbox, the cases that
// leave a sandbox as they found it, so that they pay for one boot between
// them.
func testOneSandbox(t *testing.T, h *harness) {
	info, c := h.create(t, 512)
	for _, tt := range []struct {
		name string
		fn   func(t *testing.T, h *harness, info *sandbox.Info, c *agentclient.Client)
	}{
		{"CreateIsIdempotent", testCreateIdempotent},
		{"FilesRoundTrip", testFiles},
		{"ExecTimeout", testExecTimeout},
		{"ListFindsOwnedSandboxes", testList},
		{"ConcurrentExecsLargeOutput", testConcurrentExecs},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, h, info, c) })
	}
}

type harness struct {
	rt   sandbox.Runtime
	opts Options
}

// create makes a sandbox that is deleted when the test ends, and connects.
func (h *harness) create(t *testing.T, memMB int) (*sandbox.Info, *agentclient.Client) {
	t.Helper()
	return h.createFrom(t, h.opts.Image, memMB)
}

func (h *harness) createFrom(t *testing.T, image string, memMB int) (*sandbox.Info, *agentclient.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.ReadyTimeout)
	defer cancel()
	id := uuid.NewString()
	t.Cleanup(func() {
		// A microVM's console says why it died or did not boot.
		if cl, ok := h.rt.(sandbox.ConsoleLogger); ok && t.Failed() {
			out, _ := cl.ConsoleLog(context.Background(), id, 4096)
			t.Logf("console of %s (tail):\n%s", id, out)
		}
		h.rt.Delete(context.Background(), id)
	})
	info, err := h.rt.Create(ctx, &sandbox.Spec{ID: id, Name: "t-" + id[:8], Image: image, VCPUs: 1, MemoryMB: memMB})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	c, err := sandbox.Connect(ctx, h.rt, id)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return info, c
}

func run(t *testing.T, c *agentclient.Client, timeout time.Duration, argv ...string) (string, *agentproto.Exit, error) {
	t.Helper()
	var out bytes.Buffer
	exit, err := c.Exec(context.Background(), &agentproto.ExecRequest{Argv: argv, TimeoutMS: timeout.Milliseconds()},
		agentclient.ExecIO{Stdout: &out, Stderr: &out})
	return out.String(), exit, err
}

func testCreateExecDelete(t *testing.T, h *harness) {
	info, c := h.create(t, 256)
	if info.State != sandbox.StateRunning {
		t.Errorf("state after create = %s, want running", info.State)
	}
	out, exit, err := run(t, c, 0, "sh", "-c", "echo hello; exit 7")
	if err != nil || out != "hello\n" || exit.ExitCode != 7 {
		t.Fatalf("exec = %q, %+v, %v", out, exit, err)
	}
	ctx := context.Background()
	if err := h.rt.Delete(ctx, info.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := h.rt.Inspect(ctx, info.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Inspect after delete: %v, want ErrNotFound", err)
	}
	if err := h.rt.Delete(ctx, info.ID); err != nil {
		t.Errorf("second Delete: %v, want nil", err)
	}
}

func testCreateIdempotent(t *testing.T, h *harness, info *sandbox.Info, _ *agentclient.Client) {
	again, err := h.rt.Create(context.Background(), &sandbox.Spec{ID: info.ID, Image: h.opts.Image, VCPUs: 1, MemoryMB: 512})
	if err != nil || again.RuntimeID != info.RuntimeID {
		t.Errorf("second Create = %+v, %v; want the same sandbox %s", again, err, info.RuntimeID)
	}
}

func testFiles(t *testing.T, h *harness, _ *sandbox.Info, c *agentclient.Client) {
	ctx := context.Background()
	data := make([]byte, 3<<20)
	rand.Read(data)
	if _, err := c.PutFile(ctx, &agentproto.FilePutRequest{Path: "/tmp/x/blob", MkdirAll: true}, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	out, _, _ := run(t, c, 0, "sh", "-c", "wc -c < /tmp/x/blob")
	if strings.TrimSpace(out) != "3145728" {
		t.Errorf("size inside sandbox = %q", out)
	}
	fr, err := c.GetFile(ctx, "/tmp/x/blob")
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	got, err := io.ReadAll(fr)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("round trip: %d bytes, %v", len(got), err)
	}
}

func testExecTimeout(t *testing.T, h *harness, _ *sandbox.Info, c *agentclient.Client) {
	_, exit, err := run(t, c, 500*time.Millisecond, "sleep", "30")
	if !errors.Is(err, errdefs.ErrTimeout) || exit == nil || !exit.TimedOut {
		t.Errorf("exec past timeout = %+v, %v; want a timeout error", exit, err)
	}
}

func testMemoryLimit(t *testing.T, h *harness) {
	_, c := h.create(t, 128)
	// tail keeps the whole newline-free input in memory: 400 MiB > 128 MiB.
	_, exit, err := run(t, c, 60*time.Second, "sh", "-c", "head -c 400m /dev/zero | tail > /dev/null")
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	if exit.ExitCode == 0 {
		t.Errorf("allocating 400 MiB in a 128 MiB sandbox succeeded: %+v", exit)
	}
	out, exit, err := run(t, c, 0, "echo", "alive")
	if err != nil || out != "alive\n" || exit.ExitCode != 0 {
		t.Errorf("agent after OOM: %q, %+v, %v", out, exit, err)
	}
}

func testStopStart(t *testing.T, h *harness) {
	info, c := h.create(t, 256)
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.ReadyTimeout)
	defer cancel()
	// Stopping a microVM is a power-off: what is on disk survives, so sync.
	run(t, c, 0, "sh", "-c", "echo kept > /root/state && sync")
	if err := h.rt.Stop(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.rt.Inspect(ctx, info.ID); got == nil || got.State != sandbox.StateStopped {
		t.Errorf("after Stop: %+v", got)
	}
	if err := h.rt.Start(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	c2, err := sandbox.Connect(ctx, h.rt, info.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if out, _, err := run(t, c2, 0, "cat", "/root/state"); err != nil || out != "kept\n" {
		t.Errorf("after restart: %q, %v", out, err)
	}
}

func testList(t *testing.T, h *harness, info *sandbox.Info, _ *agentclient.Client) {
	list, err := h.rt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range list {
		if i.ID == info.ID {
			return
		}
	}
	t.Errorf("List does not include %s", info.ID)
}

func testNotFound(t *testing.T, h *harness) {
	ctx := context.Background()
	id := uuid.NewString()
	if _, err := h.rt.Inspect(ctx, id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Inspect: %v", err)
	}
	if _, err := h.rt.Dial(ctx, id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Dial: %v", err)
	}
	if err := h.rt.Delete(ctx, id); err != nil {
		t.Errorf("Delete of unknown: %v, want nil", err)
	}
}

func testTwo(t *testing.T, h *harness) {
	_, a := h.create(t, 256)
	_, b := h.create(t, 256)
	run(t, a, 0, "sh", "-c", "echo a > /tmp/who")
	run(t, b, 0, "sh", "-c", "echo b > /tmp/who")
	outA, _, _ := run(t, a, 0, "cat", "/tmp/who")
	outB, _, _ := run(t, b, 0, "cat", "/tmp/who")
	if outA != "a\n" || outB != "b\n" {
		t.Errorf("sandboxes share state: a=%q b=%q", outA, outB)
	}
}

// testConcurrentExecs runs 32 execs at once in one sandbox, each writing
// 1 MiB, and checks every stream got exactly its own bytes.
func testConcurrentExecs(t *testing.T, h *harness, _ *sandbox.Info, c *agentclient.Client) {
	const n, size = 32, 1 << 20
	errs := make(chan error, n)
	for i := range n {
		go func() {
			var out bytes.Buffer
			ch := byte('a' + i%26)
			exit, err := c.Exec(context.Background(), &agentproto.ExecRequest{
				Argv: []string{"sh", "-c", fmt.Sprintf("head -c %d /dev/zero | tr '\\0' '%c'", size, ch)},
			}, agentclient.ExecIO{Stdout: &out})
			switch {
			case err != nil:
				errs <- err
			case exit.ExitCode != 0 || out.Len() != size || bytes.Count(out.Bytes(), []byte{ch}) != size:
				errs <- fmt.Errorf("exec %d: exit %+v, %d bytes", i, exit, out.Len())
			default:
				errs <- nil
			}
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func testPauseResume(t *testing.T, h *harness) {
	p, ok := h.rt.(sandbox.Pauser)
	if !ok {
		t.Skip("runtime cannot pause")
	}
	info, c := h.create(t, 256)
	ctx := context.Background()
	run(t, c, 0, "sh", "-c", "echo before > /root/state")
	if err := p.Pause(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.rt.Inspect(ctx, info.ID); got == nil || got.State != sandbox.StatePaused {
		t.Errorf("state after Pause = %+v", got)
	}
	// Frozen means frozen: nothing runs until Resume.
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	_, err := c.Exec(pctx, &agentproto.ExecRequest{Argv: []string{"true"}}, agentclient.ExecIO{})
	cancel()
	if err == nil {
		t.Error("a command ran in a paused sandbox")
	}
	if err := p.Resume(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	if out, _, err := run(t, c, 0, "cat", "/root/state"); err != nil || out != "before\n" {
		t.Errorf("after resume (same connection): %q, %v", out, err)
	}
}

func testCommit(t *testing.T, h *harness) {
	cm, ok := h.rt.(sandbox.Committer)
	if !ok {
		t.Skip("runtime cannot commit images")
	}
	info, c := h.create(t, 256)
	run(t, c, 0, "sh", "-c", "echo baked > /root/marker && sync")
	ref := "aetherium/sandboxtest:" + info.ID[:8]
	if _, err := cm.Commit(context.Background(), info.ID, ref); err != nil {
		t.Fatal(err)
	}
	if rm, ok := h.rt.(sandbox.ImageRemover); ok {
		t.Cleanup(func() { rm.RemoveImage(context.Background(), ref) })
	}
	_, c2 := h.createFrom(t, ref, 256)
	if out, _, err := run(t, c2, 0, "cat", "/root/marker"); err != nil || out != "baked\n" {
		t.Errorf("sandbox from the committed image: %q, %v", out, err)
	}
}

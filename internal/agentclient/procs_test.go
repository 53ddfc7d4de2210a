package agentclient_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/errdefs"
)

func output(t *testing.T, c *agentclient.Client, pid int, follow bool) (string, string, *agentproto.Exit, int64) {
	t.Helper()
	o, err := c.Output(context.Background(), pid, follow)
	if err != nil {
		t.Fatalf("Output(%d): %v", pid, err)
	}
	defer o.Close()
	var out, errb bytes.Buffer
	exit, err := o.Copy(agentclient.ExecIO{Stdout: &out, Stderr: &errb})
	if err != nil {
		t.Fatalf("Output(%d).Copy: %v", pid, err)
	}
	return out.String(), errb.String(), exit, o.Dropped
}

// TestBackgroundProcess: a background process is listed, its output read
// while it runs, signalled (only with an allowed signal, only while it
// runs), and its exit seen by a follower.
func TestBackgroundProcess(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := context.Background()
	pid, err := c.StartBackground(ctx, &agentproto.ExecRequest{Argv: []string{"sh", "-c", "echo a; echo b >&2; exec sleep 30"}})
	if err != nil {
		t.Fatal(err)
	}
	procs, err := c.Processes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var found *agentproto.Process
	for i := range procs {
		if procs[i].PID == pid {
			found = &procs[i]
		}
	}
	if found == nil || !found.Running || found.Argv[0] != "sh" || found.Exit != nil {
		t.Fatalf("processes = %+v, want pid %d running", procs, pid)
	}
	// The output arrives as the process writes it: follow until both lines are there is
	// not possible without an exit, so poll the non-following read.
	for {
		out, errOut, exit, _ := output(t, c, pid, false)
		if exit != nil {
			t.Fatalf("process exited early: %+v", exit)
		}
		if out == "a\n" && errOut == "b\n" {
			break
		}
	}
	if err := c.SignalProcess(ctx, pid, int(syscall.SIGSEGV)); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("SIGSEGV = %v, want ErrInvalidArgument", err)
	}
	if err := c.SignalProcess(ctx, os.Getpid(), int(syscall.SIGTERM)); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("signal to an untracked pid = %v, want ErrNotFound", err)
	}
	if err := c.SignalProcess(ctx, pid, int(syscall.SIGTERM)); err != nil {
		t.Fatal(err)
	}
	out, _, exit, _ := output(t, c, pid, true)
	if exit == nil || exit.Signal != "SIGTERM" || out != "a\n" {
		t.Errorf("followed output %q, exit %+v; want a and SIGTERM", out, exit)
	}
	if err := c.SignalProcess(ctx, pid, int(syscall.SIGTERM)); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("signal after exit = %v, want ErrConflict", err)
	}
	if _, err := c.StartBackground(ctx, &agentproto.ExecRequest{Argv: []string{"no-such-program"}}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("background start of a missing program = %v, want ErrNotFound", err)
	}
}

// TestBackgroundOutputBounded: the agent keeps at most MaxProcessOutput
// bytes of a process's output and counts what it dropped.
func TestBackgroundOutputBounded(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	const n = 3 << 20
	pid, err := c.StartBackground(context.Background(), &agentproto.ExecRequest{Argv: []string{"head", "-c", "3145728", "/dev/zero"}})
	if err != nil {
		t.Fatal(err)
	}
	output(t, c, pid, true) // until it exits
	out, _, exit, dropped := output(t, c, pid, false)
	if exit == nil || exit.ExitCode != 0 {
		t.Fatalf("exit %+v", exit)
	}
	if len(out) > agentproto.MaxProcessOutput || int64(len(out))+dropped != n {
		t.Errorf("kept %d bytes and dropped %d of %d; want at most %d kept, the rest dropped", len(out), dropped, n, agentproto.MaxProcessOutput)
	}
}

// TestKeepRunning: a keep_running exec survives its stream, and its output
// (from before and after) is read afterwards.
func TestKeepRunning(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	flag := filepath.Join(t.TempDir(), "go")
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	var once sync.Once
	w := writerFunc(func(p []byte) (int, error) {
		if strings.Contains(string(p), "started") {
			once.Do(func() { close(started) })
		}
		return len(p), nil
	})
	res := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, &agentproto.ExecRequest{KeepRunning: true,
			Argv: []string{"sh", "-c", "echo started; while [ ! -f " + flag + " ]; do sleep 0.02; done; echo later"}},
			agentclient.ExecIO{Stdout: w})
		res <- err
	}()
	<-started
	cancel()
	<-res
	var pid int
	procs, err := c.Processes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if strings.Contains(strings.Join(p.Argv, " "), flag) {
			pid = p.PID
			if !p.Running {
				t.Errorf("the keep_running process ended with its stream: %+v", p)
			}
		}
	}
	if pid == 0 {
		t.Fatalf("keep_running process not listed: %+v", procs)
	}
	os.WriteFile(flag, nil, 0o644)
	out, _, exit, _ := output(t, c, pid, true)
	if out != "started\nlater\n" || exit == nil || exit.ExitCode != 0 {
		t.Errorf("output %q exit %+v, want started, later and 0", out, exit)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestList: entries come from lstat (a symlink is described with its
// target, not followed), sorted by name.
func TestList(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("hello"), 0o640)
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	os.Symlink("/etc", filepath.Join(dir, "l"))
	l, err := c.List(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range l.Entries {
		got = append(got, e.Name+":"+e.Type+":"+e.Target)
		if e.Name == "f" && (e.Size != 5 || e.Mode != 0o640 || e.MTime.IsZero()) {
			t.Errorf("f = %+v, want size 5 mode 0640 and an mtime", e)
		}
	}
	if want := "d:dir: f:file: l:symlink:/etc"; strings.Join(got, " ") != want || l.Truncated {
		t.Errorf("list = %q truncated %v, want %q", got, l.Truncated, want)
	}
	tests := []struct {
		path string
		want error
	}{
		{filepath.Join(dir, "missing"), errdefs.ErrNotFound},
		{filepath.Join(dir, "f"), errdefs.ErrInvalidArgument},
		{"relative", errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		if _, err := c.List(context.Background(), tt.path); !errors.Is(err, tt.want) {
			t.Errorf("List(%q) = %v, want %v", tt.path, err, tt.want)
		}
	}
}

// TestWatch: a recursive watch reports creates, writes, renames and removes
// with paths relative to the watched directory, picks up new
// subdirectories, and never follows a symlink out of the tree (one there
// at the start or one created later).
func TestWatch(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	dir, outside := t.TempDir(), t.TempDir()
	os.Symlink(outside, filepath.Join(dir, "early-link"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan agentproto.FileEvent, 256)
	ready := make(chan struct{})
	res := make(chan error, 1)
	go func() {
		res <- c.Watch(ctx, dir, true, func() { close(ready) }, func(ev agentproto.FileEvent) error {
			events <- ev
			return nil
		})
	}()
	<-ready
	// next waits for the event want, failing on any event about the outside tree.
	next := func(want agentproto.FileEvent) {
		t.Helper()
		for {
			select {
			case ev := <-events:
				if strings.Contains(ev.Path, "secret") {
					t.Errorf("event from beyond a symlink: %+v", ev)
				}
				if ev == want {
					return
				}
			case <-time.After(time.Minute): // failure bound only
				t.Fatalf("no event %+v", want)
			}
		}
	}
	os.WriteFile(filepath.Join(outside, "secret"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "a"), []byte("x"), 0o644)
	next(agentproto.FileEvent{Op: agentproto.EventCreate, Path: "a"})
	next(agentproto.FileEvent{Op: agentproto.EventWrite, Path: "a"})
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	next(agentproto.FileEvent{Op: agentproto.EventCreate, Path: "sub", Dir: true})
	os.WriteFile(filepath.Join(dir, "sub", "b"), nil, 0o644)
	next(agentproto.FileEvent{Op: agentproto.EventCreate, Path: "sub/b"})
	os.Symlink(outside, filepath.Join(dir, "sub", "late-link"))
	os.WriteFile(filepath.Join(outside, "secret2"), []byte("x"), 0o644)
	os.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "sub", "c"))
	next(agentproto.FileEvent{Op: agentproto.EventRename, Path: "a"})
	next(agentproto.FileEvent{Op: agentproto.EventCreate, Path: "sub/c"})
	os.Remove(filepath.Join(dir, "sub", "b"))
	next(agentproto.FileEvent{Op: agentproto.EventRemove, Path: "sub/b"})
	// A tree that arrives whole (moved in, or made faster than its new
	// directories get their watches) is reported entry by entry.
	elsewhere := t.TempDir()
	os.MkdirAll(filepath.Join(elsewhere, "tree", "deep"), 0o755)
	os.WriteFile(filepath.Join(elsewhere, "tree", "deep", "y"), nil, 0o644)
	os.Rename(filepath.Join(elsewhere, "tree"), filepath.Join(dir, "tree"))
	next(agentproto.FileEvent{Op: agentproto.EventCreate, Path: "tree", Dir: true})
	next(agentproto.FileEvent{Op: agentproto.EventCreate, Path: "tree/deep", Dir: true})
	next(agentproto.FileEvent{Op: agentproto.EventCreate, Path: "tree/deep/y"})
	os.WriteFile(filepath.Join(dir, "tree", "deep", "z"), nil, 0o644) // and watched from then on
	next(agentproto.FileEvent{Op: agentproto.EventCreate, Path: "tree/deep/z"})
	cancel()
	if err := <-res; err != nil {
		t.Errorf("Watch ended with %v, want nil after cancel", err)
	}
	if err := c.Watch(context.Background(), filepath.Join(dir, "missing"), false, nil, nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("watch of a missing dir = %v, want ErrNotFound", err)
	}
}

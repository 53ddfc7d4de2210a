package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/task"
)

// TestProcessesAndFiles drives background processes and directory access
// through a real aetherd and Docker sandbox, with the CLI where a user
// would: start one detached, list it, read its output while it runs,
// reattach with follow, signal it and see the exit; refuse to signal a
// process Aetherium did not start (the agent itself) or with a signal off
// the allowlist; read the output of a keep_running exec whose HTTP stream
// went away; list a directory; watch one while files come and go, never
// following a symlink out of it.
func TestProcessesAndFiles(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	e.MustCreateVM(&client.CreateVMRequest{Name: "procs"})

	out, code := e.aether("", "exec", "procs", "-d", "--", "echo a; sleep 30")
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if code != 0 || err != nil {
		t.Fatalf("exec -d = %d %q", code, out)
	}
	out, code = e.aether("", "ps", "procs", "-o", "json")
	var procs []apiv1.Process
	if err := json.Unmarshal([]byte(out), &procs); code != 0 || err != nil {
		t.Fatalf("ps -o json = %d %q: %v", code, out, err)
	}
	if len(procs) != 1 || procs[0].PID != pid || !procs[0].Running || !strings.Contains(strings.Join(procs[0].Argv, " "), "echo a; sleep 30") {
		t.Errorf("ps = %+v, want pid %d running", procs, pid)
	}
	for { // the output, while it runs: no exit
		o, err := e.c.ProcessOutput(ctx(t), "procs", pid, false)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		exit, err := o.Copy(&buf, &buf)
		o.Close()
		if err != nil || exit != nil {
			t.Fatalf("output of a running process: exit %+v, %v", exit, err)
		}
		if buf.String() == "a\n" {
			break
		}
	}
	followed := make(chan string, 1)
	o, err := e.c.ProcessOutput(ctx(t), "procs", pid, true)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer o.Close()
		var buf bytes.Buffer
		exit, err := o.Copy(&buf, &buf)
		if err != nil || exit == nil {
			followed <- "error: " + strings.TrimSpace(buf.String())
			return
		}
		followed <- buf.String() + exit.Signal
	}()
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"kill", "procs", "1", "-s", "KILL"}, 1, "not started through Aetherium"},
		{[]string{"kill", "procs", strconv.Itoa(pid), "-s", "SEGV"}, 1, "signal"},
		{[]string{"kill", "procs", strconv.Itoa(pid)}, 0, ""},
	} {
		if out, code := e.aether("", tt.args...); code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("aether %v = %d %q, want %d %q", tt.args, code, out, tt.code, tt.want)
		}
	}
	if got := <-followed; got != "a\nSIGTERM" {
		t.Errorf("followed output and exit = %q, want a and SIGTERM", got)
	}
	if out, code := e.aether("", "attach", "procs", strconv.Itoa(pid)); code != 128+15 || out != "a\n" {
		t.Errorf("attach to the ended process = %d %q, want 143 %q", code, out, "a\n")
	}
	if out, code := e.aether("", "kill", "procs", strconv.Itoa(pid)); code != 1 || !strings.Contains(out, "has exited") {
		t.Errorf("kill after exit = %d %q, want 1 and 'has exited'", code, out)
	}

	// keep_running: the exec's HTTP stream goes away, the command does not.
	xctx, cancel := context.WithCancel(ctx(t))
	started := make(chan struct{})
	var once sync.Once
	go e.c.Exec(xctx, "procs", &task.ExecParams{KeepRunning: true,
		Command: "echo started; while [ ! -f /tmp/go ]; do sleep 0.05; done; echo later"}, nil,
		writerFunc(func(p []byte) { once.Do(func() { close(started) }) }), nil)
	<-started
	cancel()
	if _, err := e.c.PutFile(ctx(t), "procs", "/tmp/go", 0, strings.NewReader("")); err != nil {
		t.Fatal(err)
	}
	procs, err = e.c.Processes(ctx(t), "procs")
	if err != nil || len(procs) != 2 || !strings.Contains(strings.Join(procs[1].Argv, " "), "/tmp/go") {
		t.Fatalf("processes after a keep_running exec = %+v, %v", procs, err)
	}
	if out, code := e.aether("", "attach", "procs", strconv.Itoa(procs[1].PID)); code != 0 || out != "started\nlater\n" {
		t.Errorf("attach to the keep_running process = %d %q, want 0 started, later", code, out)
	}

	// Files: a listing, then a recursive watch.
	if out, code := e.MustExec("procs", "mkdir -p /data/sub && echo hello >/data/f && ln -s /etc /data/link"); code != 0 {
		t.Fatalf("setup: %s", out)
	}
	out, code = e.aether("", "ls", "procs", "/data", "-o", "json")
	var l apiv1.DirListing
	if err := json.Unmarshal([]byte(out), &l); code != 0 || err != nil {
		t.Fatalf("ls -o json = %d %q: %v", code, out, err)
	}
	var names []string
	for _, en := range l.Entries {
		names = append(names, en.Name+":"+en.Type+":"+en.Target)
		if en.Name == "f" && en.Size != 6 {
			t.Errorf("f has size %d, want 6", en.Size)
		}
	}
	if got, want := strings.Join(names, " "), "f:file: link:symlink:/etc sub:dir:"; got != want {
		t.Errorf("ls /data = %q, want %q", got, want)
	}
	if out, code := e.aether("", "ls", "procs", "/data/f"); code != 1 || !strings.Contains(out, "not a directory") {
		t.Errorf("ls of a file = %d %q, want 1 'not a directory'", code, out)
	}
	wctx, stop := context.WithCancel(ctx(t))
	defer stop()
	events := make(chan apiv1.FileEvent, 64)
	ready := make(chan struct{})
	go e.c.WatchDir(wctx, "procs", "/data", true, func() { close(ready) }, func(ev apiv1.FileEvent) error {
		events <- ev
		return nil
	})
	<-ready
	if out, code := e.MustExec("procs", "echo x >/etc/probe-secret; touch /data/sub/new; rm /data/f"); code != 0 {
		t.Fatalf("changes: %s", out)
	}
	want := []apiv1.FileEvent{{Op: "create", Path: "sub/new"}, {Op: "remove", Path: "f"}}
	for len(want) > 0 {
		ev := <-events
		if strings.Contains(ev.Path, "secret") {
			t.Errorf("event from beyond the symlink: %+v", ev)
		}
		if ev == want[0] {
			want = want[1:]
		}
	}
}

type writerFunc func(p []byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

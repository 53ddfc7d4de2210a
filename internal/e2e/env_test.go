package e2e_test

import (
	"bytes"
	"context"

	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
	"github.com/aetherium/aetherium/internal/testbin"
)

// proc is one aetherd process with its own data dir, port and worker ID.
type proc struct {
	t        testing.TB
	dir      string
	addr     string
	workerID string
	bin      string
	args     []string
	cmd      *exec.Cmd
	log      *lockedBuffer
}

// lockedBuffer is aetherd's output: written by the process's copier, read
// by tests (benchmarks read it while aetherd runs).
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Take returns what was written so far and forgets it.
func (l *lockedBuffer) Take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.buf.String()
	l.buf.Reset()
	return s
}

// testEnv drives an Aetherium deployment through the API process c talks to.
// newDockerEnv makes the embedded single-process kind on Docker.
type testEnv struct {
	*proc
	t     testing.TB
	procs []*proc
	cli   string
	c     *client.Client
}

func newDockerEnv(t testing.TB, extra ...string) *testEnv {
	t.Helper()
	e := newEnv(t)
	e.proc = e.add(append([]string{"--runtime", "docker"}, extra...)...)
	e.connect(e.proc)
	e.start()
	return e
}

// newEnv prepares binaries and cleanup for any number of processes.
func newEnv(t testing.TB) *testEnv {
	t.Helper()
	testbin.BaseImage(t)
	agent := testbin.Build(t, "aether-agent")
	e := &testEnv{t: t, cli: testbin.Build(t, "aether")}
	bin := testbin.Build(t, "aetherd")
	os.Symlink(agent, filepath.Join(filepath.Dir(bin), "aether-agent"))
	t.Cleanup(func() {
		for _, p := range e.procs {
			p.stop()
		}
		// Whatever a test left behind, no container or microVM outlives it.
		for _, p := range e.procs {
			exec.Command("pkill", "-f", "-KILL", "qemu-system.*"+p.dir).Run()
			out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=io.aetherium.owner="+p.workerID).Output()
			if ids := strings.Fields(string(out)); len(ids) > 0 {
				exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
			}
			if t.Failed() {
				t.Logf("aetherd %s log:\n%s", p.workerID, p.log)
			}
			// Only now: a TempDir would be removed before this cleanup
			// (cleanups run last-registered first), under a running aetherd
			// whose creates in flight still write there.
			if err := os.RemoveAll(p.dir); err != nil {
				t.Errorf("remove aetherd %s's directory: %v", p.workerID, err)
			}
		}
	})
	return e
}

// add prepares (does not start) one more aetherd process with extra flags,
// which must name its runtime (--runtime docker, qemu or auto): no test's
// outcome may depend on what auto picks on the host it runs on.
func (e *testEnv) add(extra ...string) *proc {
	t := e.t
	if !slices.Contains(extra, "--runtime") {
		t.Fatalf("aetherd %v: say which runtime the test means (--runtime docker|qemu|auto)", extra)
	}
	dir, err := os.MkdirTemp("", "aether-e2e-") // removed by newEnv's cleanup, after aetherd stopped
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, dir: dir, addr: freeAddr(t), workerID: "e2e-" + uuid.NewString()[:8],
		bin: testbin.Build(t, "aetherd"), args: extra, log: &lockedBuffer{}}
	e.procs = append(e.procs, p)
	return p
}

// connect points the API client at p; it authenticates with the
// deployment's bootstrap admin key (e.key), found when p has started.
func (e *testEnv) connect(p *proc) {
	var err error
	if e.c, err = client.New("http://"+p.addr, e.http()); err != nil {
		p.t.Fatal(err)
	}
}

// http is an HTTP client that sends the deployment's admin key with every
// request that carries no Authorization of its own.
func (e *testEnv) http() *http.Client {
	return &http.Client{Transport: keyTransport{e}}
}

type keyTransport struct{ e *testEnv }

func (kt keyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Authorization") == "" {
		if k := kt.e.key(); k != "" {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+k)
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

// key is the bootstrap admin key aetherd wrote to its data dir
// (<proc.dir>/data/admin.key): that of the first process that has one (in
// a cluster sharing a store, only the first API process to start makes it).
func (e *testEnv) key() string {
	for _, p := range e.procs {
		if b, err := os.ReadFile(filepath.Join(p.dir, "data", client.AdminKeyFile)); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	return ""
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs aetherd and waits for /health with a deadline.
func (p *proc) start() {
	p.t.Helper()
	// A relative data dir, as with the default ./aether-data: guards the bug
	// where it reached Docker as a relative bind path.
	args := append([]string{"--data-dir", "data", "--listen", p.addr, "--worker-id", p.workerID, "--log-level", "info"}, p.args...)
	p.cmd = exec.Command(p.bin, args...)
	p.cmd.Dir = p.dir
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	c, _ := client.New("http://"+p.addr, nil)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Health(ctx)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("aetherd not healthy within 20s; log:\n%s", p.log)
}

// stop sends SIGTERM and waits for a graceful exit.
func (p *proc) stop() {
	if p.cmd == nil || p.cmd.Process == nil || p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			p.t.Errorf("aetherd exited uncleanly after SIGTERM: %v", err)
		}
	case <-time.After(45 * time.Second):
		p.cmd.Process.Kill()
		<-done
		p.t.Errorf("aetherd did not stop within 45s of SIGTERM")
	}
}

// kill ends aetherd with SIGKILL, as a crash would.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

func (p *proc) restart() {
	p.stop()
	p.start()
}

// ctx bounds one call of a test against a hang. It is no timing
// assertion: a loaded host may take minutes for a template build or a
// microVM's TCG boot, so the bound is generous.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return c
}

// MustCreateVM creates a sandbox and waits for it to run.
func (e *testEnv) MustCreateVM(req *client.CreateVMRequest) *apiv1.VM {
	e.t.Helper()
	acc, err := e.c.CreateVM(ctx(e.t), req)
	if err != nil {
		e.t.Fatalf("create %s: %v", req.Name, err)
	}
	task := e.mustWait(acc.TaskID)
	if task.Status != store.TaskSucceeded {
		e.t.Fatalf("create %s: task %s: %s", req.Name, task.Status, task.Error)
	}
	vm, err := e.c.GetVM(ctx(e.t), acc.VMID)
	if err != nil || vm.Status != store.VMRunning {
		e.t.Fatalf("vm after create: %+v, %v", vm, err)
	}
	return vm
}

func (e *testEnv) mustWait(taskID string) *apiv1.Task {
	e.t.Helper()
	task, err := e.c.WaitTask(ctx(e.t), taskID, nil)
	if err != nil {
		e.t.Fatalf("wait task %s: %v", taskID, err)
	}
	return task
}

// MustExec runs a shell command through the streaming exec API.
func (e *testEnv) MustExec(vm, command string) (string, int) {
	e.t.Helper()
	var out bytes.Buffer
	res, err := e.c.Exec(ctx(e.t), vm, &task.ExecParams{Command: command}, nil, &out, &out)
	if err != nil {
		e.t.Fatalf("exec %q in %s: %v", command, vm, err)
	}
	if res.ExitCode == nil {
		e.t.Fatalf("exec %q: no exit code: %+v", command, res)
	}
	return out.String(), *res.ExitCode
}

// aether runs the CLI against this env.
func (e *testEnv) aether(stdin string, args ...string) (string, int) {
	cmd := exec.Command(e.cli, args...)
	cmd.Env = append(e.cliEnv(), "AETHER_SERVER=http://"+e.addr)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("aether %v: %v", args, err)
	}
	return string(out), code
}

// cliEnv is the environment the CLI runs in: no AETHER_API_KEY, and
// AETHER_DATA_DIR pointing at the data dir holding the bootstrap key, so
// every CLI test also proves the CLI finds the key file on its own.
func (e *testEnv) cliEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AETHER_API_KEY=") && !strings.HasPrefix(kv, "AETHER_DATA_DIR=") {
			env = append(env, kv)
		}
	}
	for _, p := range e.procs {
		if dir := filepath.Join(p.dir, "data"); fileExists(filepath.Join(dir, client.AdminKeyFile)) {
			return append(env, "AETHER_DATA_DIR="+dir)
		}
	}
	return env
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// containers lists the sandbox IDs of this process's containers.
func (p *proc) containers() []string {
	out, err := exec.Command("docker", "ps", "-a", "--filter", "label=io.aetherium.owner="+p.workerID,
		"--format", `{{.Label "io.aetherium.sandbox-id"}}`).Output()
	if err != nil {
		p.t.Fatalf("docker ps: %v", err)
	}
	return strings.Fields(string(out))
}

// waitRunning waits until a worker has started the task.
func (e *testEnv) waitRunning(taskID string) {
	e.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if task, _ := e.c.GetTask(ctx(e.t), taskID, 0); task != nil && task.Status == store.TaskRunning {
			return
		}
	}
	e.t.Fatalf("task %s never started running", taskID)
}

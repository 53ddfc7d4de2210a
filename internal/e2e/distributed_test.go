package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
	"github.com/aetherium/aetherium/internal/testbin"
)

const testToken = "e2e-internal-token-0123456789"

// cluster is one api process and some worker processes sharing a Postgres
// schema and a Redis server.
type cluster struct {
	*testEnv
	redis   *testbin.Redis
	api     *proc
	workers []*proc
}

func newCluster(t *testing.T, workers int) *cluster { return newClusterTB(t, workers) }

// newClusterTB starts the cluster; extra is appended to every process's
// config file.
func newClusterTB(t testing.TB, workers int, extra ...string) *cluster {
	t.Helper()
	c := &cluster{testEnv: newEnv(t), redis: testbin.StartRedis(t)}
	shared := []string{"--runtime", "docker", "--database-url", testbin.PostgresURL(t), "--redis-addr", c.redis.Addr,
		"--internal-token", testToken, "--config", writeConfig(t,
			"worker_dead_after: 3s\nreconcile_interval: 500ms\nrequeue_after: 1s\n"+strings.Join(extra, ""))}
	for range workers {
		w := c.add(append([]string{"--role", "worker"}, shared...)...)
		w.start()
		c.workers = append(c.workers, w)
	}
	c.api = c.add(append([]string{"--role", "api"}, shared...)...)
	c.api.start()
	c.proc = c.api
	c.connect(c.api)
	return c
}

func writeConfig(t testing.TB, body string) string {
	p := t.TempDir() + "/aetherd.yaml"
	if err := exec.Command("sh", "-c", fmt.Sprintf("cat > %s <<'EOF'\n%sEOF", p, body)).Run(); err != nil {
		t.Fatal(err)
	}
	return p
}

func (c *cluster) ownerOf(vm *apiv1.VM) *proc {
	for _, w := range c.workers {
		if w.workerID == vm.WorkerID {
			return w
		}
	}
	c.t.Fatalf("sandbox %s placed on unknown worker %q", vm.Name, vm.WorkerID)
	return nil
}

// TestDistributedRouting: six sandboxes spread over two workers; execute,
// exec, files and delete each reach the owning worker and give the right
// output.
func TestDistributedRouting(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2)
	var vms []*apiv1.VM
	for i := range 6 {
		vms = append(vms, c.MustCreateVM(&client.CreateVMRequest{Name: fmt.Sprintf("d%d", i)}))
	}
	perWorker := map[string]int{}
	for _, vm := range vms {
		perWorker[vm.WorkerID]++
		if got := c.ownerOf(vm).containers(); !slices.Contains(got, vm.ID) {
			t.Errorf("sandbox %s not among its worker's containers %v", vm.Name, got)
		}
	}
	if perWorker[c.workers[0].workerID] != 3 || perWorker[c.workers[1].workerID] != 3 {
		t.Errorf("placement %v, want 3 and 3", perWorker)
	}
	for _, vm := range vms {
		acc, err := c.c.Execute(ctx(t), vm.Name, &task.ExecParams{Command: "hostname"})
		if err != nil {
			t.Fatal(err)
		}
		tk := c.mustWait(acc.TaskID)
		var res task.ExecResult
		json.Unmarshal(tk.Result, &res)
		if tk.Status != store.TaskSucceeded || res.Stdout != vm.Name+"\n" || tk.WorkerID != vm.WorkerID {
			t.Errorf("execute in %s: %s %q on %s, want %q on %s", vm.Name, tk.Status, res.Stdout, tk.WorkerID, vm.Name, vm.WorkerID)
		}
		if out, code := c.MustExec(vm.Name, "cat /etc/hostname"); out != vm.Name+"\n" || code != 0 {
			t.Errorf("exec in %s through the api: %q %d", vm.Name, out, code)
		}
		data := []byte("payload for " + vm.Name)
		if _, err := c.c.PutFile(ctx(t), vm.Name, "/tmp/f", 0, bytes.NewReader(data)); err != nil {
			t.Fatalf("put %s: %v", vm.Name, err)
		}
		var got bytes.Buffer
		if _, err := c.c.GetFile(ctx(t), vm.Name, "/tmp/f", &got); err != nil || got.String() != string(data) {
			t.Errorf("get %s: %q %v", vm.Name, got.String(), err)
		}
	}
	// Background processes and directories through the api process, which
	// runs no worker: every call goes to the owner's internal routes.
	vm := vms[0].Name
	pid, err := c.c.StartProcess(ctx(t), vm, &task.ExecParams{Command: "echo p; exec sleep 30"})
	if err != nil {
		t.Fatal(err)
	}
	if ps, err := c.c.Processes(ctx(t), vm); err != nil || len(ps) != 1 || ps[0].PID != pid {
		t.Errorf("processes of %s: %+v %v", vm, ps, err)
	}
	if err := c.c.SignalProcess(ctx(t), vm, pid, "TERM"); err != nil {
		t.Fatal(err)
	}
	if o, err := c.c.ProcessOutput(ctx(t), vm, pid, true); err != nil {
		t.Error(err)
	} else if exit, err := o.Copy(io.Discard, io.Discard); err != nil || exit == nil || exit.Signal != "SIGTERM" {
		t.Errorf("followed exit in %s: %+v %v, want SIGTERM", vm, exit, err)
	}
	var apiErr *client.Error
	if err := c.c.SignalProcess(ctx(t), vm, pid, "TERM"); !errors.As(err, &apiErr) || apiErr.Code != "conflict" {
		t.Errorf("signal after exit through the api: %v, want 409 conflict", err)
	}
	if l, err := c.c.ListDir(ctx(t), vm, "/tmp"); err != nil || !slices.ContainsFunc(l.Entries, func(e apiv1.DirEntry) bool { return e.Name == "f" }) {
		t.Errorf("list /tmp in %s: %+v %v", vm, l, err)
	}
	wctx, stop := context.WithCancel(ctx(t))
	ready, seen := make(chan struct{}), make(chan apiv1.FileEvent, 16)
	go c.c.WatchDir(wctx, vm, "/tmp", false, func() { close(ready) }, func(ev apiv1.FileEvent) error { seen <- ev; return nil })
	<-ready
	c.MustExec(vm, "touch /tmp/watched")
	for ev := range seen {
		if ev.Path == "watched" {
			break
		}
	}
	stop()

	// The workers' internal endpoint trusts only the shared token.
	for _, token := range []string{"", "wrong-token-0123456789"} {
		ic, _ := client.NewInternal("http://"+c.workers[0].addr, token, nil)
		_, err := ic.Exec(ctx(t), vms[0].ID, &task.ExecParams{Command: "true"}, nil, nil, nil)
		var apiErr *client.Error
		if !errors.As(err, &apiErr) || apiErr.Status != 401 {
			t.Errorf("internal exec with token %q: %v, want 401", token, err)
		}
	}
	// "shell":false survives the forwarding to the owner.
	putWeirdProgram(t, c.c, vm)
	var out bytes.Buffer
	if res, err := c.c.Exec(ctx(t), vm, &task.ExecParams{Command: weirdProgram, Shell: new(false)}, nil, &out, &out); err != nil || *res.ExitCode != 0 || out.String() != "ran\n" {
		t.Errorf("exec shell:false through the api: %q %+v %v, want ran", out.String(), res, err)
	}
	owner := c.ownerOf(vms[0])
	ic, _ := client.NewInternal("http://"+owner.addr, testToken, nil)
	if res, err := ic.Exec(ctx(t), vms[0].ID, &task.ExecParams{Command: "true"}, nil, nil, nil); err != nil || *res.ExitCode != 0 {
		t.Errorf("internal exec with the token: %+v %v", res, err)
	}
	for _, vm := range vms {
		acc, err := c.c.DeleteVM(ctx(t), vm.Name)
		if err != nil {
			t.Fatal(err)
		}
		if tk := c.mustWait(acc.TaskID); tk.Status != store.TaskSucceeded || tk.WorkerID != vm.WorkerID {
			t.Errorf("delete %s: %s on %s", vm.Name, tk.Status, tk.WorkerID)
		}
	}
	for _, w := range c.workers {
		if got := w.containers(); len(got) != 0 {
			t.Errorf("worker %s still has containers %v", w.workerID, got)
		}
	}
}

// TestWorkerDeath kills one worker with SIGKILL while it runs a task: the
// task ends failed with a reason within a bounded time, the other worker
// keeps serving, and the restarted worker adopts its sandbox again.
func TestWorkerDeath(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2)
	a := c.MustCreateVM(&client.CreateVMRequest{Name: "on-a"})
	b := c.MustCreateVM(&client.CreateVMRequest{Name: "on-b"})
	victim := c.ownerOf(a)
	acc, err := c.c.Execute(ctx(t), "on-a", &task.ExecParams{Command: "sleep 60"})
	if err != nil {
		t.Fatal(err)
	}
	c.waitRunning(acc.TaskID)
	victim.kill()
	killed := time.Now()

	tk := c.mustWait(acc.TaskID)
	took := time.Since(killed)
	if tk.Status != store.TaskFailed || !strings.Contains(tk.Error, "stopped heartbeating") || took > 20*time.Second {
		t.Errorf("task after worker death: %s %q after %s", tk.Status, tk.Error, took)
	}
	if vm, _ := c.c.GetVM(ctx(t), "on-a"); vm.Status != store.VMLost {
		t.Errorf("sandbox of the dead worker: %s, want lost", vm.Status)
	}
	if _, err := c.c.Execute(ctx(t), "on-a", &task.ExecParams{Command: "true"}); err == nil || !strings.Contains(err.Error(), "lost") {
		t.Errorf("execute on a lost sandbox: %v, want a clear refusal", err)
	}
	if out, code := c.MustExec(b.Name, "echo still-here"); out != "still-here\n" || code != 0 {
		t.Errorf("surviving worker's sandbox: %q %d", out, code)
	}

	victim.start()
	deadline := time.Now().Add(20 * time.Second)
	for vm, _ := c.c.GetVM(ctx(t), "on-a"); vm.Status != store.VMRunning; vm, _ = c.c.GetVM(ctx(t), "on-a") {
		if time.Now().After(deadline) {
			t.Fatalf("restarted worker did not adopt its sandbox: %s %q", vm.Status, vm.Error)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, code := c.MustExec("on-a", "echo adopted"); out != "adopted\n" || code != 0 {
		t.Errorf("adopted sandbox: %q %d", out, code)
	}
	if got := victim.containers(); !slices.Equal(got, []string{a.ID}) {
		t.Errorf("restarted worker's containers %v, want only %s", got, a.ID)
	}
}

// TestRedisLoss flushes, then restarts, Redis while tasks are pending (their
// worker is down): no task is lost; the reconciler re-sends what Redis lost.
func TestRedisLoss(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1)
	w := c.workers[0]
	c.MustCreateVM(&client.CreateVMRequest{Name: "rl"})
	for _, disrupt := range []struct {
		name string
		fn   func()
	}{{"flush", c.redis.Flush}, {"restart", c.redis.Restart}} {
		w.stop()
		var ids []string
		for i := range 3 {
			acc, err := c.c.Execute(ctx(t), "rl", &task.ExecParams{Command: fmt.Sprintf("echo %s-%d", disrupt.name, i)})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, acc.TaskID)
		}
		disrupt.fn()
		w.start()
		for i, id := range ids {
			tk := c.mustWait(id)
			var res task.ExecResult
			json.Unmarshal(tk.Result, &res)
			if tk.Status != store.TaskSucceeded || res.Stdout != fmt.Sprintf("%s-%d\n", disrupt.name, i) {
				t.Errorf("after redis %s: task %d %s %q %q", disrupt.name, i, tk.Status, tk.Error, res.Stdout)
			}
		}
	}
}

// TestPostgresRestart stops and restarts PostgreSQL under a running aetherd:
// requests fail cleanly while it is down and work again after, without
// restarting aetherd.
func TestPostgresRestart(t *testing.T) {
	t.Parallel()
	pg := testbin.StartPostgres(t)
	e := newEnv(t)
	e.proc = e.add("--runtime", "docker", "--database-url", pg.URL)
	e.connect(e.proc)
	e.start()
	e.MustCreateVM(&client.CreateVMRequest{Name: "before"})

	pg.Stop()
	var apiErr *client.Error
	if _, err := e.c.ListVMs(ctx(t)); !errors.As(err, &apiErr) || apiErr.Status != 503 {
		t.Errorf("list with the database down: %v, want a 503", err)
	}
	pg.Start()

	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := e.c.Health(ctx(t))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("aetherd did not recover after postgres came back: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.MustCreateVM(&client.CreateVMRequest{Name: "after"})
	if out, code := e.MustExec("before", "echo ok"); out != "ok\n" || code != 0 {
		t.Errorf("sandbox from before the restart: %q %d", out, code)
	}
}

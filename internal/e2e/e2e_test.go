package e2e_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
	"github.com/aetherium/aetherium/internal/testbin"
)

// TestSandboxLifecycle drives the whole user flow through the API and CLI,
// with a daemon restart in the middle: create → execute (async) → exec
// (streamed) → files → history → restart → still usable → job → delete.
func TestSandboxLifecycle(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "life", VCPUs: 1, MemoryMB: 256})
	if out, _ := e.MustExec("life", "hostname -I"); vm.IPAddress == "" || strings.TrimSpace(out) != vm.IPAddress {
		t.Errorf("ip_address %q, the container has %q", vm.IPAddress, out)
	}
	if out, code := e.aether("", "vm", "get", "life"); code != 0 || !strings.Contains(out, "IP") || !strings.Contains(out, vm.IPAddress) {
		t.Errorf("aether vm get: %q (exit %d), want the address %s", out, code, vm.IPAddress)
	}

	acc, err := e.c.Execute(ctx(t), "life", &task.ExecParams{Command: "echo", Args: []string{"async", "path"}})
	if err != nil {
		t.Fatal(err)
	}
	tk := e.mustWait(acc.TaskID)
	var res task.ExecResult
	json.Unmarshal(tk.Result, &res)
	if tk.Status != store.TaskSucceeded || res.Stdout != "async path\n" || *res.ExitCode != 0 {
		t.Fatalf("execute task = %s %s %+v", tk.Status, tk.Error, res)
	}

	var stdout, stderr bytes.Buffer
	xr, err := e.c.Exec(ctx(t), vm.ID, &task.ExecParams{Command: "echo out; echo err >&2; exit 4"}, nil, &stdout, &stderr)
	if err != nil || stdout.String() != "out\n" || stderr.String() != "err\n" || *xr.ExitCode != 4 {
		t.Fatalf("exec = %q %q %+v %v", stdout.String(), stderr.String(), xr, err)
	}

	data := make([]byte, 5<<20)
	rand.Read(data)
	if _, err := e.c.PutFile(ctx(t), "life", "/root/data.bin", 0o600, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if out, _ := e.MustExec("life", "sha256sum /root/data.bin | cut -c1-64; stat -c %a /root/data.bin"); out != sha(data)+"\n600\n" {
		t.Errorf("uploaded file inside sandbox: %q, want %s 600", out, sha(data))
	}

	e.restart()

	var got bytes.Buffer
	if _, err := e.c.GetFile(ctx(t), "life", "/root/data.bin", &got); err != nil || sha(got.Bytes()) != sha(data) {
		t.Fatalf("download after restart: %d bytes, %v", got.Len(), err)
	}
	if out, code := e.aether("from stdin", "exec", "life", "--", "sh", "-c", "cat; exit 3"); out != "from stdin" || code != 3 {
		t.Errorf("aether exec after restart = %q exit %d, want stdin echoed and exit 3", out, code)
	}

	jacc, err := e.c.CreateJob(ctx(t), "life", []string{"echo one", "echo two > /tmp/two", "cat /tmp/two"})
	if err != nil {
		t.Fatal(err)
	}
	e.mustWait(jacc.TaskID)
	job, err := e.c.GetJob(ctx(t), jacc.JobID)
	if err != nil || job.Job.Status != store.JobSucceeded || len(job.Executions) != 3 || job.Executions[2].Stdout != "two\n" {
		t.Fatalf("job = %+v, %v", job, err)
	}

	execs, err := e.c.Executions(ctx(t), "life")
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, x := range execs {
		if x.CompletedAt == nil || x.ExitCode == nil {
			t.Errorf("execution %s %q not finished: %+v", x.ID, x.Command, x)
		}
		cmds = append(cmds, x.Command)
	}
	for _, want := range []string{"echo", "echo out; echo err >&2; exit 4", "sh", "echo one", "cat /tmp/two"} {
		if !slices.Contains(cmds, want) {
			t.Errorf("executions lack %q: %q", want, cmds)
		}
	}

	dacc, err := e.c.DeleteVM(ctx(t), "life")
	if err != nil {
		t.Fatal(err)
	}
	if tk := e.mustWait(dacc.TaskID); tk.Status != store.TaskSucceeded {
		t.Fatalf("delete: %s", tk.Error)
	}
	if c := e.containers(); len(c) != 0 {
		t.Errorf("containers after delete: %v", c)
	}
	if _, err := e.c.GetVM(ctx(t), "life"); !client.IsNotFound(err) {
		t.Errorf("get by name after delete: %v, want 404", err)
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestKillDuringCreate kills aetherd with SIGKILL while a create runs; after
// a restart the task ends terminal and every container belongs to a running
// sandbox (no orphans).
func TestKillDuringCreate(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	acc, err := e.c.CreateVM(ctx(t), &client.CreateVMRequest{Name: "crash"})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		tk, err := e.c.GetTask(ctx(t), acc.TaskID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if tk.Status != store.TaskPending || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	e.kill()
	e.start()
	tk := e.mustWait(acc.TaskID)
	if !tk.Terminal() {
		t.Fatalf("task not terminal after restart: %+v", tk)
	}
	vm, err := e.c.GetVM(ctx(t), acc.VMID)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{}
	if vm.Status == store.VMRunning {
		want = []string{vm.ID}
		if out, code := e.MustExec(vm.ID, "echo ok"); out != "ok\n" || code != 0 {
			t.Errorf("sandbox after crash recovery: %q %d", out, code)
		}
	}
	if got := e.containers(); !slices.Equal(got, want) {
		t.Errorf("containers = %v, want %v (vm %s, task %s %s)", got, want, vm.Status, tk.Status, tk.Error)
	}
}

// TestMemoryLimit runs a workload past memory_mb: it is killed, the sandbox
// and aetherd keep working.
func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	e.MustCreateVM(&client.CreateVMRequest{Name: "small", MemoryMB: 128})
	out, code := e.MustExec("small", "head -c 400m /dev/zero | tail > /dev/null; echo status=$?")
	if !strings.Contains(out, "status=137") || code != 0 {
		t.Errorf("hog = %q exit %d, want it killed (137)", out, code)
	}
	if out, code := e.MustExec("small", "echo alive"); out != "alive\n" || code != 0 {
		t.Errorf("after OOM: %q %d", out, code)
	}
	if _, err := e.c.Health(ctx(t)); err != nil {
		t.Errorf("aetherd unhealthy after sandbox OOM: %v", err)
	}
}

// TestGracefulShutdown sends SIGTERM while an async command runs: the daemon
// drains it before exiting and the task is recorded as succeeded.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	e.MustCreateVM(&client.CreateVMRequest{Name: "drain"})
	acc, err := e.c.Execute(ctx(t), "drain", &task.ExecParams{Command: "sleep 2; echo finished"})
	if err != nil {
		t.Fatal(err)
	}
	e.waitRunning(acc.TaskID)
	e.stop()
	e.start()
	tk := e.mustWait(acc.TaskID)
	var res task.ExecResult
	json.Unmarshal(tk.Result, &res)
	if tk.Status != store.TaskSucceeded || res.Stdout != "finished\n" {
		t.Errorf("task after graceful stop = %s %q %q", tk.Status, tk.Error, res.Stdout)
	}
}

// TestBadInput sends malformed and invalid requests: each gets a 4xx JSON
// error naming the problem, and nothing is created.
func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	e.MustCreateVM(&client.CreateVMRequest{Name: "taken"})
	big := `{"name":"` + strings.Repeat("a", 2<<20) + `"}`
	tests := []struct {
		name, method, path, body string
		wantStatus               int
		wantCode, wantMsg        string
	}{
		{"malformed json", "POST", "/api/v1/vms", `{"name":`, 400, "invalid_argument", "malformed JSON"},
		{"empty body", "POST", "/api/v1/vms", ``, 400, "invalid_argument", "empty"},
		{"unknown field", "POST", "/api/v1/vms", `{"name":"a","cpus":2}`, 400, "invalid_argument", `unknown field "cpus"`},
		{"wrong type", "POST", "/api/v1/vms", `{"name":"a","vcpus":"two"}`, 400, "invalid_argument", "vcpus"},
		{"not an object", "POST", "/api/v1/vms", `[1,2]`, 400, "invalid_argument", "JSON object"},
		{"trailing data", "POST", "/api/v1/vms", `{"name":"a"} {}`, 400, "invalid_argument", "after the JSON"},
		{"bad name", "POST", "/api/v1/vms", `{"name":"Not_DNS"}`, 400, "invalid_argument", "name"},
		{"vcpus range", "POST", "/api/v1/vms", `{"name":"a","vcpus":0}`, 400, "invalid_argument", "vcpus"},
		{"memory range", "POST", "/api/v1/vms", `{"name":"a","memory_mb":64}`, 400, "invalid_argument", "memory_mb"},
		{"unknown tool", "POST", "/api/v1/vms", `{"name":"a","additional_tools":["cobol"]}`, 422, "unprocessable", `unknown tool "cobol"`},
		{"malformed tool version", "POST", "/api/v1/vms", `{"name":"a","additional_tools":["nodejs"],"tool_versions":{"nodejs":"v20;rm"}}`, 422, "unprocessable", "not a valid version of nodejs"},
		{"duplicate name", "POST", "/api/v1/vms", `{"name":"taken"}`, 409, "already_exists", "taken"},
		{"oversized", "POST", "/api/v1/vms", big, 413, "too_large", "larger than"},
		{"unknown vm", "GET", "/api/v1/vms/nope", ``, 404, "not_found", "nope"},
		{"unknown vm exec", "POST", "/api/v1/vms/nope/exec", `{"command":"true"}`, 404, "not_found", "nope"},
		{"empty command", "POST", "/api/v1/vms/taken/execute", `{"command":""}`, 400, "invalid_argument", "command"},
		{"bad env", "POST", "/api/v1/vms/taken/exec", `{"command":"true","env":{"A-B":"1"}}`, 400, "invalid_argument", "env"},
		{"relative cwd", "POST", "/api/v1/vms/taken/exec", `{"command":"true","cwd":"tmp"}`, 400, "invalid_argument", "cwd"},
		{"negative timeout", "POST", "/api/v1/vms/taken/execute", `{"command":"true","timeout_seconds":-1}`, 400, "invalid_argument", "timeout_seconds"},
		{"missing program", "POST", "/api/v1/vms/taken/exec", `{"command":"no-such-prog","args":["x"]}`, 400, "invalid_argument", "not found"},
		{"shell with args", "POST", "/api/v1/vms/taken/exec", `{"command":"ls","args":["-l"],"shell":true}`, 400, "invalid_argument", "shell"},
		{"shell with args queued", "POST", "/api/v1/vms/taken/execute", `{"command":"ls","args":["-l"],"shell":true}`, 400, "invalid_argument", "shell"},
		{"missing program without shell", "POST", "/api/v1/vms/taken/exec", `{"command":"no such prog","shell":false}`, 400, "invalid_argument", "not found"},
		{"relative file path", "GET", "/api/v1/vms/taken/files?path=etc/passwd", ``, 400, "invalid_argument", "path"},
		{"missing file", "GET", "/api/v1/vms/taken/files?path=/nope", ``, 404, "not_found", "/nope"},
		{"bad mode", "PUT", "/api/v1/vms/taken/files?path=/x&mode=999", `x`, 400, "invalid_argument", "mode"},
		{"unknown task", "GET", "/api/v1/tasks/nope", ``, 404, "not_found", "nope"},
		{"bad wait", "GET", "/api/v1/tasks/nope?wait=forever", ``, 400, "invalid_argument", "wait"},
		{"empty job", "POST", "/api/v1/jobs", `{"vm_id":"taken","commands":[]}`, 400, "invalid_argument", "commands"},
		{"job unknown vm", "POST", "/api/v1/jobs", `{"vm_id":"nope","commands":["true"]}`, 404, "not_found", "nope"},
		{"bad image include", "POST", "/api/v1/images", `{"include":["a b"]}`, 400, "invalid_argument", "include"},
		{"wrong method", "PATCH", "/api/v1/vms", `{}`, 405, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(ctx(t), tt.method, "http://"+e.addr+tt.path, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := e.http().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tt.wantStatus || body.Error.Code != tt.wantCode || !strings.Contains(body.Error.Message, tt.wantMsg) {
				t.Errorf("%s %s %.60q = %d %+v; want %d %s containing %q", tt.method, tt.path, tt.body, resp.StatusCode, body.Error, tt.wantStatus, tt.wantCode, tt.wantMsg)
			}
		})
	}
	vms, err := e.c.ListVMs(ctx(t))
	if err != nil || len(vms) != 1 || len(e.containers()) != 1 {
		t.Errorf("after bad requests: %d vms, %d containers, %v; want 1 and 1", len(vms), len(e.containers()), err)
	}
	if out, code := e.aether("", "vm", "get", "nope"); code != 1 || strings.Count(out, "\n") != 1 || !strings.Contains(out, "not found") {
		t.Errorf("CLI on unknown vm: %q exit %d, want one line and exit 1", out, code)
	}
}

// TestOrphanCleanup leaves a container that carries this worker's labels but
// no sandbox row (as a crash between container create and row update would)
// and checks that a restarted aetherd removes it while keeping real ones.
func TestOrphanCleanup(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	keep := e.MustCreateVM(&client.CreateVMRequest{Name: "keep"})
	orphan := "00000000-0000-4000-8000-" + e.workerID[4:] + "0000"
	out, err := exec.Command("docker", "run", "-d", "--name", "aether-"+orphan,
		"--label", "io.aetherium.managed=true", "--label", "io.aetherium.owner="+e.workerID,
		"--label", "io.aetherium.sandbox-id="+orphan, testbin.BaseImage(t), "sleep", "600").CombinedOutput()
	if err != nil {
		t.Fatalf("docker run: %v %s", err, out)
	}
	e.restart() // reconciles at start
	if got := e.containers(); !slices.Equal(got, []string{keep.ID}) {
		t.Errorf("containers after reconcile = %v, want only %s", got, keep.ID)
	}
	if out, code := e.MustExec("keep", "echo ok"); out != "ok\n" || code != 0 {
		t.Errorf("kept sandbox: %q %d", out, code)
	}
}

// TestKillDuringExecute kills aetherd while an async command runs. After the
// restart the task must end failed with a reason, and the command must not
// have been run a second time.
func TestKillDuringExecute(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	e.MustCreateVM(&client.CreateVMRequest{Name: "victim"})
	acc, err := e.c.Execute(ctx(t), "victim", &task.ExecParams{Command: "echo run >> /root/runs; sleep 3"})
	if err != nil {
		t.Fatal(err)
	}
	e.waitRunning(acc.TaskID)
	// An interactive exec is cut off too; its row must not stay running.
	go e.c.Exec(ctx(t), "victim", &task.ExecParams{Command: "sleep 60"}, nil, io.Discard, io.Discard)
	time.Sleep(200 * time.Millisecond) // the commands have started
	e.kill()
	e.start()
	tk := e.mustWait(acc.TaskID)
	if tk.Status != store.TaskFailed || !strings.Contains(tk.Error, "not run again") {
		t.Errorf("task after crash = %s %q, want failed saying it was not run again", tk.Status, tk.Error)
	}
	ex, err := e.c.Executions(ctx(t), "victim")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ex {
		if x.CompletedAt == nil || !strings.Contains(x.Error, "worker stopped") {
			t.Errorf("execution %s (%s) after the crash: completed %v, error %q; want closed with the reason", x.ID, x.Command, x.CompletedAt, x.Error)
		}
	}
	if len(ex) != 2 {
		t.Errorf("%d executions, want the queued and the interactive one", len(ex))
	}
	time.Sleep(3 * time.Second) // a wrongly re-run command would have appended by now
	if out, _ := e.MustExec("victim", "cat /root/runs"); out != "run\n" {
		t.Errorf("command ran %d times, want once", strings.Count(out, "run"))
	}
}

// TestOutputCap checks the history keeps the first 64 KiB of each stream with
// a truncated flag, while the live stream gets everything.
func TestOutputCap(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	e.MustCreateVM(&client.CreateVMRequest{Name: "loud"})
	out, code := e.MustExec("loud", "head -c 200000 /dev/zero | tr '\\0' x; echo small >&2")
	if len(out) != 200006 || code != 0 {
		t.Fatalf("live output %d bytes, exit %d; want all 200006", len(out), code)
	}
	execs, err := e.c.Executions(ctx(t), "loud")
	if err != nil || len(execs) != 1 {
		t.Fatalf("executions: %v %v", execs, err)
	}
	x := execs[0]
	if len(x.Stdout) != 64<<10 || !x.StdoutTruncated || x.Stderr != "small\n" || x.StderrTruncated {
		t.Errorf("recorded stdout %d bytes truncated=%v, stderr %q truncated=%v", len(x.Stdout), x.StdoutTruncated, x.Stderr, x.StderrTruncated)
	}
}

package e2e_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
	"github.com/aetherium/aetherium/internal/testbin"
)

// needQEMU gates the tests that boot real QEMU microVMs (minutes under
// TCG): `make test` sets AETHER_TEST_QEMU=1.
func needQEMU(t testing.TB) {
	t.Helper()
	if os.Getenv("AETHER_TEST_QEMU") != "1" {
		t.Skip("skipping: set AETHER_TEST_QEMU=1 to boot real QEMU microVMs (minutes under TCG)")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("skipping: qemu-system-x86_64 not installed")
	}
}

// qemuAccel is the accelerator every QEMU test gives aetherd: tcg, which
// works on every host, or AETHER_TEST_QEMU_ACCEL (kvm where KVM boots
// guests). Never auto: its probe waits up to 20 s where KVM hangs (PVM
// hosts), and its outcome would depend on the host.
func qemuAccel() string {
	if a := os.Getenv("AETHER_TEST_QEMU_ACCEL"); a != "" {
		return a
	}
	return "tcg"
}

// TestQEMULifecycle drives the API flow of TestSandboxLifecycle against
// aetherd --runtime qemu: real microVMs (see qemuAccel), with a daemon restart in
// the middle; the VM survives it and is gone after delete. It runs in a
// network namespace of its own, where aetherd makes the default microVM
// network (bridge aetherium0, 10.77.0.0/16, NAT, no host access): the host
// reaches a service in the guest at its ip_address, the guest cannot open a
// connection to the host, and its TAP is gone after delete.
func TestQEMULifecycle(t *testing.T) {
	t.Parallel()
	needQEMU(t)
	if !testbin.InNetns(t) {
		return
	}
	e := newEnv(t)
	e.proc = e.add("--runtime", "qemu", "--qemu-accel", qemuAccel())
	e.connect(e.proc)
	e.start()
	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "micro", MemoryMB: 512})
	if vm.Runtime != "qemu" {
		t.Errorf("runtime = %q", vm.Runtime)
	}
	acc, err := e.c.Execute(ctx(t), "micro", &task.ExecParams{Command: "uname", Args: []string{"-r"}})
	if err != nil {
		t.Fatal(err)
	}
	tk := e.mustWait(acc.TaskID)
	var res task.ExecResult
	json.Unmarshal(tk.Result, &res)
	if tk.Status != store.TaskSucceeded || !strings.Contains(res.Stdout, "amd64") {
		t.Errorf("execute in the microVM: %s %q %q", tk.Status, tk.Error, res.Stdout)
	}
	data := make([]byte, 1<<20)
	rand.Read(data)
	if _, err := e.c.PutFile(ctx(t), "micro", "/root/blob", 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	e.restart()
	var got bytes.Buffer
	if _, err := e.c.GetFile(ctx(t), "micro", "/root/blob", &got); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("file after restart: %d bytes, %v", got.Len(), err)
	}
	if out, code := e.MustExec("micro", "echo from-the-vm; cat /proc/1/comm"); out != "from-the-vm\naether-agent\n" || code != 0 {
		t.Errorf("exec after restart: %q %d", out, code)
	}
	gw, err := net.Listen("tcp", "10.77.0.1:0") // the bridge aetherd made
	if err != nil {
		t.Fatalf("no gateway address: %v", err)
	}
	go http.Serve(gw, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "host says hi") }))
	if out, _ := e.MustExec("micro", "curl -sS --max-time 5 http://"+gw.Addr().String()+"/ 2>&1; echo \" exit=$?\""); strings.Contains(out, "host says hi") || strings.Contains(out, "exit=0") {
		t.Errorf("guest opened a connection to the host: %q", out)
	}
	// The other way: a service in the sandbox, reached at its ip_address.
	if !strings.HasPrefix(vm.IPAddress, "10.77.0.") {
		t.Fatalf("ip_address = %q, want one of 10.77.0.0/16", vm.IPAddress)
	}
	e.MustExec("micro", `setsid perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalPort => 7000, Listen => 5, ReuseAddr => 1) or die;
		while ($c = $s->accept) { print $c "guest says hi\n"; close $c }' >/dev/null 2>&1 &`)
	var reply []byte
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && len(reply) == 0; time.Sleep(100 * time.Millisecond) {
		if conn, err := net.DialTimeout("tcp", vm.IPAddress+":7000", 2*time.Second); err == nil {
			reply, _ = io.ReadAll(conn)
			conn.Close()
		}
	}
	if string(reply) != "guest says hi\n" {
		t.Errorf("host to a service in the guest at %s: %q", vm.IPAddress, reply)
	}
	if console, code := e.aether("", "vm", "console", "micro", "--bytes", "4096"); code != 0 || !strings.Contains(console, "aether-init: starting agent") {
		t.Errorf("aether vm console: %q, exit %d", console, code)
	}
	for _, verb := range []string{"pause", "resume"} {
		if out, code := e.aether("", "vm", verb, "micro"); code != 0 {
			t.Fatalf("aether vm %s: %q, exit %d", verb, out, code)
		}
	}
	if out, code := e.MustExec("micro", "echo resumed"); out != "resumed\n" || code != 0 {
		t.Errorf("exec after pause/resume: %q %d", out, code)
	}
	del, err := e.c.DeleteVM(ctx(t), "micro")
	if err != nil {
		t.Fatal(err)
	}
	if tk := e.mustWait(del.TaskID); tk.Status != store.TaskSucceeded {
		t.Fatalf("delete: %s", tk.Error)
	}
	if left, _ := os.ReadDir(filepath.Join(e.dir, "data", "vms")); len(left) != 0 {
		t.Errorf("microVM state left after delete: %v", left)
	}
	if ifs, _ := net.Interfaces(); len(ifs) != 2 { // lo and aetherium0
		t.Errorf("interfaces after delete: %v, want lo and the bridge", ifs)
	}
}

// TestQEMUTemplatesAndPool: templates, the warm pool and snapshots work on
// microVMs too: the template's disk is the build VM's, committed; a pool VM
// is handed out; a snapshot of a sandbox boots with its files; deleting
// everything leaves no committed guest behind.
func TestQEMUTemplatesAndPool(t *testing.T) {
	t.Parallel()
	needQEMU(t)
	e := newEnv(t)
	e.proc = e.add("--runtime", "qemu", "--qemu-accel", qemuAccel(), "--network", "none")
	e.connect(e.proc)
	e.start()
	acc, err := e.c.CreateTemplate(ctx(t), &client.TemplateRequest{Name: "mt", Setup: []string{"echo baked > /etc/baked"}, PoolSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if tk := e.mustWait(acc.TaskID); tk.Status != store.TaskSucceeded {
		t.Fatalf("template build: %s", tk.Error)
	}
	e.waitPoolReady("mt", 1, 3*time.Minute)
	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "fromtpl", Template: "mt"})
	if out, code := e.MustExec(vm.Name, "cat /etc/baked; echo mine > /root/mine; ls /sys/class/net"); out != "baked\nlo\n" || code != 0 {
		t.Errorf("sandbox from the template (network none: only lo): %q %d", out, code)
	}
	if vm.IPAddress != "" {
		t.Errorf("ip_address %q with network none", vm.IPAddress)
	}
	snap, err := e.c.Snapshot(ctx(t), "fromtpl", "mt-snap")
	if err != nil {
		t.Fatal(err)
	}
	if tk := e.mustWait(snap.TaskID); tk.Status != store.TaskSucceeded {
		t.Fatalf("snapshot: %s", tk.Error)
	}
	e.MustCreateVM(&client.CreateVMRequest{Name: "fromsnap", Template: "mt-snap"})
	if out, _ := e.MustExec("fromsnap", "cat /etc/baked /root/mine"); out != "baked\nmine\n" {
		t.Errorf("sandbox from the snapshot: %q", out)
	}
	for _, name := range []string{"fromtpl", "fromsnap"} {
		del, err := e.c.DeleteVM(ctx(t), name)
		if err != nil {
			t.Fatal(err)
		}
		e.mustWait(del.TaskID)
	}
	for _, name := range []string{"mt", "mt-snap"} {
		del, err := e.c.DeleteTemplate(ctx(t), name)
		if err != nil {
			t.Fatal(err)
		}
		if tk := e.mustWait(del.TaskID); tk.Status != store.TaskSucceeded {
			t.Fatalf("delete template %s: %s", name, tk.Error)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(e.dir, "data", "guests", "committed", "*")); len(left) != 0 {
		t.Errorf("committed guests left after deleting everything: %v", left)
	}
}

// TestQEMUPtyAndPorts: terminals and the port proxy work the same in a
// microVM, whose agent is PID 1 and mounts devpts itself.
func TestQEMUPtyAndPorts(t *testing.T) {
	t.Parallel()
	needQEMU(t)
	if !testbin.InNetns(t) {
		return
	}
	e := newEnv(t)
	e.proc = e.add("--runtime", "qemu", "--qemu-accel", qemuAccel())
	e.connect(e.proc)
	e.start()
	e.MustCreateVM(&client.CreateVMRequest{Name: "mterm", MemoryMB: 512})
	term, err := e.c.Pty(ctx(t), "mterm", &client.PtyOptions{Command: "tty; stty size; read l; echo got=$l; exit 4", Cols: 70, Rows: 9})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	out := watch(term)
	out.waitFor(t, "9 70")
	io.WriteString(term, "x\r")
	out.waitFor(t, "got=x")
	out.waitEnd(t)
	if exit, err := term.Wait(); err != nil || *exit.ExitCode != 4 || !strings.Contains(out.String(), "/dev/pts/") {
		t.Errorf("microVM terminal: %q, exit %+v, %v; want /dev/pts/N and exit 4", out.String(), exit, err)
	}
	e.startHTTPD("mterm", "127.0.0.1", "8000")
	resp, err := e.http().Get("http://" + e.addr + "/api/v1/vms/mterm/ports/8000/q")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), "method=GET path=/q auth=none") {
		t.Errorf("port proxy into the microVM: %d %q", resp.StatusCode, body)
	}
}

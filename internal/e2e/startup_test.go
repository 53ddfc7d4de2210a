package e2e_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/api"
)

// hangingQEMU is a STAND-IN for qemu-system-x86_64, not QEMU: it records its
// PID and then hangs forever, as the real QEMU does with accel=kvm on a host
// whose /dev/kvm is PVM-only. Whether the real one hangs or fails at once
// depends on the host, so the test brings its own hang.
const hangingQEMU = `#!/bin/sh
echo $$ >> "$(dirname "$0")/started"
exec sleep 3600
`

// TestAutoRuntimeDoesNotWaitForAHangingKVMProbe guards the bug where aetherd
// with runtime auto waited 20 s for a KVM probe before serving /health, so
// `make demo` and the e2e tests failed on hosts whose KVM hangs. aetherd must
// answer /health and pick Docker while the probe still hangs, end the probe
// at probe_timeout, keep its verdict, and never probe the same host again.
func TestAutoRuntimeDoesNotWaitForAHangingKVMProbe(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/kvm"); err != nil {
		t.Skip("no /dev/kvm: the KVM probe is not attempted on this host")
	}
	bin := t.TempDir()
	qemu := filepath.Join(bin, "qemu-system-x86_64")
	if err := os.WriteFile(qemu, []byte(hangingQEMU), 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.proc = e.add("--runtime", "auto", "--config", writeConfig(t, "probe_timeout: 2s\nqemu:\n  binary: "+qemu+"\n"))
	e.connect(e.proc)
	began := time.Now()
	e.start()
	t.Logf("healthy %v after starting aetherd", time.Since(began).Round(time.Millisecond))

	// Healthy on Docker while the probe has no verdict yet: startup did not
	// wait for it.
	h := e.health()
	if h.Runtime.Name != "docker" || !strings.Contains(h.Runtime.Skipped["qemu-kvm"], "probing") {
		t.Fatalf("health right after start: runtime %+v; want docker, with qemu-kvm still probing", h.Runtime)
	}
	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "while-probing"})
	if out, code := e.MustExec(vm.ID, "echo ok"); out != "ok\n" || code != 0 {
		t.Fatalf("exec while probing: %q, %d", out, code)
	}

	// The probe ends at probe_timeout with a verdict that says so, and the
	// stand-in is gone.
	want := "no: did not finish within 2s"
	for deadline := time.Now().Add(30 * time.Second); e.health().Runtime.Skipped["qemu-kvm"] != want; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("qemu-kvm verdict: %q; want %q", e.health().Runtime.Skipped["qemu-kvm"], want)
		}
	}
	pids := standInPIDs(t, bin)
	if len(pids) != 1 {
		t.Fatalf("the stand-in QEMU was started %d times; want 1", len(pids))
	}
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pids[0], 0) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the hanging probe (pid %d) outlived its timeout", pids[0])
		}
	}

	// The verdict is kept: a restart knows it at once and probes no more.
	e.restart()
	if got := e.health().Runtime; got.Name != "docker" || got.Skipped["qemu-kvm"] != want {
		t.Fatalf("health after restart: runtime %+v; want docker with qemu-kvm %q", got, want)
	}
	if n := len(standInPIDs(t, bin)); n != 1 {
		t.Fatalf("after a restart the stand-in QEMU was started %d times; want still 1 (verdict cached)", n)
	}
}

// health returns GET /health of the env's API process.
func (e *testEnv) health() (h struct{ Runtime api.RuntimeChoice }) {
	e.t.Helper()
	m, err := e.c.Health(ctx(e.t))
	if err == nil {
		var raw []byte
		if raw, err = json.Marshal(m); err == nil {
			err = json.Unmarshal(raw, &h)
		}
	}
	if err != nil {
		e.t.Fatalf("health: %v", err)
	}
	return h
}

func standInPIDs(t *testing.T, dir string) []int {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "started"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(raw)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("stand-in pid %q: %v", f, err)
		}
		pids = append(pids, pid)
	}
	return pids
}

// TestBootstrapAdminKey: a fresh embedded aetherd makes the first admin key
// in a 0600 file of its 0700 data dir; without keys it refuses any listen
// address but loopback, until `aetherd key create` makes one.
func TestBootstrapAdminKey(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	data := filepath.Join(e.dir, "data")
	for path, want := range map[string]os.FileMode{data: 0o700 | os.ModeDir, filepath.Join(data, "admin.key"): 0o600,
		filepath.Join(data, "aether.db"): 0o600, filepath.Join(data, "queue.db"): 0o600} {
		st, err := os.Stat(path)
		if err != nil || st.Mode() != want {
			t.Errorf("%s: mode %v, %v; want %v", path, st.Mode(), err, want)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(data, "admin.key"))
	if !strings.HasPrefix(string(raw), "ae_") {
		t.Fatalf("admin.key holds %q; want a key", raw)
	}

	fresh := t.TempDir()
	aetherd := func(args ...string) (string, error) {
		cmd := exec.Command(e.proc.bin, args...)
		cmd.Dir = fresh
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	public := "0.0.0.0:" + strings.Split(freeAddr(t), ":")[1]
	out, err := aetherd("--runtime", "docker", "--listen", public)
	if err == nil || !strings.Contains(out, "not a loopback address and no API key exists") {
		t.Fatalf("aetherd on %s with no keys: %v\n%s", public, err, out)
	}
	if _, err := os.Stat(filepath.Join(fresh, "aether-data", "admin.key")); err == nil {
		t.Fatal("a refused non-loopback start wrote a bootstrap key")
	}
	key, err := aetherd("key", "create", "--admin", "--name", "ops")
	if err != nil || !strings.HasPrefix(key, "ae_") {
		t.Fatalf("aetherd key create: %v\n%s", err, key)
	}
	if out, err := aetherd("key", "list"); err != nil || !strings.Contains(out, "ops") || !strings.Contains(out, "active") {
		t.Fatalf("aetherd key list: %v\n%s", err, out)
	}
}

package e2e_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// waitVM waits until the sandbox reaches status, failing after within.
func (e *testEnv) waitVM(name, status string, within time.Duration) *apiv1.VM {
	e.t.Helper()
	var vm *apiv1.VM
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		vm, _ = e.c.GetVM(ctx(e.t), name)
		if vm != nil && vm.Status == status {
			return vm
		}
	}
	e.t.Fatalf("sandbox %s did not become %s within %s (last: %+v)", name, status, within, vm)
	return nil
}

// TestTTL: a sandbox with timeout_seconds is deleted when it passes (and is
// extended by POST /timeout); with on_expire=pause it is paused instead; the
// deadline survives a daemon restart.
func TestTTL(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	del := e.MustCreateVM(&client.CreateVMRequest{Name: "ttl-del", TimeoutSeconds: 3})
	// Long enough to outlast a slow create on a loaded host (its deadline
	// runs from the request); what is checked is that the extension moved it.
	ext := e.MustCreateVM(&client.CreateVMRequest{Name: "ttl-ext", TimeoutSeconds: 300})
	pau := e.MustCreateVM(&client.CreateVMRequest{Name: "ttl-pause", TimeoutSeconds: 3, OnExpire: "pause"})
	if _, err := e.c.SetTimeout(ctx(t), "ttl-ext", 3600); err != nil {
		t.Fatal(err)
	}
	e.restart() // deadlines live in the store
	start := time.Now()
	gone := e.waitVM(del.ID, store.VMDeleted, 15*time.Second)
	if took := time.Since(start); took > 10*time.Second || gone.ExpiresAt == nil {
		t.Errorf("expiry took %s", took)
	}
	e.waitVM(pau.ID, store.VMPaused, 15*time.Second)
	if !slices.Contains(e.containers(), pau.ID) || slices.Contains(e.containers(), del.ID) {
		t.Errorf("containers %v: want the paused one kept and the deleted one gone", e.containers())
	}
	if vm, _ := e.c.GetVM(ctx(t), ext.ID); vm.Status != store.VMRunning || vm.ExpiresAt == nil || time.Until(*vm.ExpiresAt) < 3000*time.Second {
		t.Errorf("extended sandbox: %s, expires %v; want running, in about an hour", vm.Status, vm.ExpiresAt)
	}
}

// TestIdleTimeout: a running exec keeps a sandbox alive past its idle
// timeout; once idle long enough it expires.
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	acc, err := e.c.CreateVM(ctx(t), &client.CreateVMRequest{Name: "idle", IdleTimeout: 2})
	if err != nil {
		t.Fatal(err)
	}
	created := e.mustWait(acc.TaskID)
	vm, err := e.c.GetVM(ctx(t), acc.VMID)
	if err != nil {
		t.Fatal(err)
	}
	// The idle clock starts when the sandbox is made, not when it was
	// asked for: a create slower than the timeout (a busy CI host) had it
	// expire as it became ready.
	if created.StartedAt == nil || vm.LastActiveAt == nil || vm.LastActiveAt.Before(*created.StartedAt) {
		t.Fatalf("idle clock of a new sandbox: last active %v, its create started %v; want after", vm.LastActiveAt, created.StartedAt)
	}
	if out, code := e.MustExec("idle", "sleep 5; echo survived"); out != "survived\n" || code != 0 {
		t.Fatalf("exec running past the idle timeout: %q %d", out, code)
	}
	if got, _ := e.c.GetVM(ctx(t), vm.ID); got.Status != store.VMRunning {
		t.Fatalf("sandbox expired while busy: %s", got.Status)
	}
	e.waitVM(vm.ID, store.VMDeleted, 10*time.Second)
}

// TestPauseResumeSnapshot: a paused sandbox refuses commands clearly,
// resumes with its state intact, and a snapshot of it starts new sandboxes
// that see its files.
func TestPauseResumeSnapshot(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	e.MustCreateVM(&client.CreateVMRequest{Name: "pz"})
	e.MustExec("pz", "echo state > /root/state; sleep 1000 >/dev/null 2>&1 &")
	acc, err := e.c.Pause(ctx(t), "pz")
	if err != nil {
		t.Fatal(err)
	}
	if tk := e.mustWait(acc.TaskID); tk.Status != store.TaskSucceeded {
		t.Fatalf("pause: %s", tk.Error)
	}
	if _, err := e.c.Exec(ctx(t), "pz", &task.ExecParams{Command: "true"}, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "paused") {
		t.Errorf("exec on a paused sandbox: %v, want a clear refusal", err)
	}
	if acc, err = e.c.Resume(ctx(t), "pz"); err != nil {
		t.Fatal(err)
	}
	e.mustWait(acc.TaskID)
	if out, code := e.MustExec("pz", "cat /root/state; grep -lx sleep /proc/[0-9]*/comm | wc -l"); out != "state\n1\n" || code != 0 {
		t.Errorf("after resume: %q %d, want the file and the background process", out, code)
	}

	snap, err := e.c.Snapshot(ctx(t), "pz", "pz-snap")
	if err != nil {
		t.Fatal(err)
	}
	if tk := e.mustWait(snap.TaskID); tk.Status != store.TaskSucceeded {
		t.Fatalf("snapshot: %s", tk.Error)
	}
	e.MustCreateVM(&client.CreateVMRequest{Name: "fork", Template: "pz-snap"})
	if out, _ := e.MustExec("fork", "cat /root/state"); out != "state\n" {
		t.Errorf("sandbox from the snapshot: %q", out)
	}
}

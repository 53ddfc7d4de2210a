package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/store"
)

// activity counts running execs and transfers per sandbox, so the idle
// timeout never fires under a command that is still running.
type activity struct {
	mu      sync.Mutex
	running map[string]int
}

func (a *activity) busy(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.running[id] > 0
}

// begin marks a sandbox active until the returned func is called; both ends
// are recorded as its last activity.
func (w *Worker) begin(ctx context.Context, vm *store.VM) func() {
	w.act.mu.Lock()
	if w.act.running == nil {
		w.act.running = map[string]int{}
	}
	w.act.running[vm.ID]++
	w.act.mu.Unlock()
	w.touch(ctx, vm)
	return func() {
		w.act.mu.Lock()
		if w.act.running[vm.ID]--; w.act.running[vm.ID] <= 0 {
			delete(w.act.running, vm.ID)
		}
		w.act.mu.Unlock()
		w.touch(context.WithoutCancel(ctx), vm)
	}
}

func (w *Worker) touch(ctx context.Context, vm *store.VM) {
	if vm.IdleTimeoutS == 0 {
		return // nobody reads it: save the write on the exec path
	}
	now := time.Now()
	w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, LastActiveAt: &now})
}

// expired reports why a sandbox has expired, or "".
func (w *Worker) expired(vm *store.VM, now time.Time) string {
	if vm.ExpiresAt != nil && !now.Before(*vm.ExpiresAt) {
		return "its timeout passed"
	}
	if vm.IdleTimeoutS > 0 && vm.LastActiveAt != nil && !w.act.busy(vm.ID) &&
		now.Sub(*vm.LastActiveAt) >= time.Duration(vm.IdleTimeoutS)*time.Second {
		return fmt.Sprintf("it was idle for %ds", vm.IdleTimeoutS)
	}
	return ""
}

// expire deletes or pauses this worker's running sandboxes whose lifetime
// is over. Deadlines live in the store, so expiry survives restarts.
func (w *Worker) expire(ctx context.Context) {
	vms, err := w.store.VMList(ctx, &store.VMListParams{ProjectID: store.DefaultProjectID, WorkerID: w.cfg.ID})
	if err != nil {
		return
	}
	now := time.Now()
	for _, vm := range vms {
		if vm.Status != store.VMRunning {
			continue
		}
		why := w.expired(vm, now)
		if why == "" {
			continue
		}
		w.log.InfoContext(ctx, "sandbox expired", slog.String("sandbox_id", vm.ID), slog.String("reason", why), slog.String("action", vm.OnExpire))
		typ, status := TypeVMDelete, store.VMDeleting
		if vm.OnExpire == store.ExpirePause {
			typ, status = TypeVMPause, store.VMPaused
		}
		// The status changes at once so the sweep does not fire twice; the
		// task does the work and keeps the history.
		w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &status})
		if err := w.enqueueFor(ctx, vm, typ, map[string]string{"reason": "expired: " + why}); err != nil {
			w.log.WarnContext(ctx, "expire", slog.String("sandbox_id", vm.ID), slog.Any("err", err))
		}
	}
}

// enqueueFor inserts and sends a task about one of this worker's sandboxes.
func (w *Worker) enqueueFor(ctx context.Context, vm *store.VM, typ string, payload any) error {
	p := Policies[typ]
	b, _ := json.Marshal(payload)
	t, err := w.store.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: vm.ProjectID, Type: typ, Priority: p.Priority,
		MaxRetries: p.MaxRetries, VMID: vm.ID, Payload: b})
	if err != nil {
		return err
	}
	return Enqueue(ctx, w.queue, t, w.cfg.ID)
}

// vmPause freezes a sandbox (cgroup freezer for Docker); memory is kept.
func (w *Worker) vmPause(ctx context.Context, task *store.Task) (any, error) {
	return w.setFrozen(ctx, task, true)
}

// vmResume thaws a paused sandbox.
func (w *Worker) vmResume(ctx context.Context, task *store.Task) (any, error) {
	return w.setFrozen(ctx, task, false)
}

func (w *Worker) setFrozen(ctx context.Context, task *store.Task, freeze bool) (any, error) {
	p, ok := w.rt.(sandbox.Pauser)
	if !ok {
		return nil, errdefs.FailedPrecondition("this worker's runtime cannot pause sandboxes")
	}
	vm, err := w.store.VMGet(ctx, &store.VMGetParams{ProjectID: task.ProjectID, IDOrName: task.VMID})
	if err != nil {
		return nil, err
	}
	info, err := w.rt.Inspect(ctx, vm.ID)
	if err != nil {
		return nil, err
	}
	status := store.VMRunning
	switch {
	case freeze && info.State != sandbox.StatePaused:
		err = p.Pause(ctx, vm.ID)
		status = store.VMPaused
	case freeze:
		status = store.VMPaused
	case info.State == sandbox.StatePaused:
		err = p.Resume(ctx, vm.ID)
	}
	if err != nil {
		return nil, err
	}
	if !freeze {
		// A resumed sandbox starts a fresh idle period.
		now := time.Now()
		w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, LastActiveAt: &now})
	}
	if _, err := w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &status}); err != nil {
		return nil, err
	}
	return &VMResult{VMID: vm.ID, Status: status}, nil
}

// SnapshotPayload is the payload of vm:snapshot tasks.
type SnapshotPayload struct {
	TemplateID string `json:"template_id"`
}

// vmSnapshot saves a sandbox's current filesystem as a ready template, so a
// prepared environment can be forked into new sandboxes.
func (w *Worker) vmSnapshot(ctx context.Context, task *store.Task) (any, error) {
	var p SnapshotPayload
	if err := json.Unmarshal(task.Payload, &p); err != nil {
		return nil, queue.Permanent(fmt.Errorf("bad payload: %w", err))
	}
	committer, ok := w.rt.(sandbox.Committer)
	if !ok {
		return nil, errdefs.FailedPrecondition("this worker's runtime cannot snapshot sandboxes")
	}
	vm, err := w.store.VMGet(ctx, &store.VMGetParams{ProjectID: task.ProjectID, IDOrName: task.VMID})
	if err != nil {
		return nil, err
	}
	tpl, err := w.store.TemplateGet(ctx, &store.TemplateGetParams{ProjectID: task.ProjectID, IDOrName: p.TemplateID})
	if err != nil {
		return nil, err
	}
	ref := TemplateImage(tpl.Name, tpl.SpecHash)
	if err := w.commit(ctx, committer, vm, ref); err != nil {
		return nil, err
	}
	if _, err := w.store.TemplateUpdate(ctx, &store.TemplateUpdateParams{ID: tpl.ID, Status: store.TemplateReady,
		Image: &ref, ToolsInstalled: vm.ToolsInstalled}); err != nil {
		return nil, err
	}
	return &TemplateResult{Template: tpl.Name, Image: ref, ToolsInstalled: vm.ToolsInstalled}, nil
}

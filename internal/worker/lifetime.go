package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
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

// touch records activity on a sandbox with an idle timeout. A failed write
// is logged: the sandbox may then expire early, as if idle since the last
// recorded activity.
func (w *Worker) touch(ctx context.Context, vm *store.VM) {
	if vm.IdleTimeoutS == 0 {
		return // nobody reads it: save the write on the exec path
	}
	now := time.Now()
	_, err := w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, LastActiveAt: &now})
	warnIf(ctx, w.log, "record sandbox activity", err, slog.String("sandbox_id", vm.ID))
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
	now := time.Now()
	// Only the candidates: a sweep a second must not cost O(sandboxes).
	vms, err := w.store.VMList(ctx, &store.VMListParams{ProjectID: store.AllProjects, WorkerID: w.cfg.ID, ExpiredAt: now})
	if err != nil {
		w.log.WarnContext(ctx, "expire: list sandboxes", slog.Any("err", err))
		return
	}
	for _, vm := range vms {
		if vm.Status != store.VMRunning {
			continue
		}
		if why := w.expired(vm, now); why != "" {
			w.expireOne(ctx, vm, why)
		}
	}
}

// expireOne moves an expired sandbox to deleting or paused at once, so the
// next sweep does not fire again, then submits the task that does the work
// and keeps the history. If the status cannot be written nothing is
// submitted: the next sweep tries again.
func (w *Worker) expireOne(ctx context.Context, vm *store.VM, why string) {
	log := w.log.With(slog.String("sandbox_id", vm.ID))
	log.InfoContext(ctx, "sandbox expired", slog.String("reason", why), slog.String("action", vm.OnExpire))
	var args task.Args = task.VMDeleteArgs{Reason: "expired: " + why}
	status := store.VMDeleting
	if vm.OnExpire == store.ExpirePause {
		args, status = task.VMPauseArgs{Reason: "expired: " + why}, store.VMPaused
	}
	if _, err := w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &status, IfStatus: []string{vm.Status}}); err != nil {
		if !errors.Is(err, errdefs.ErrConflict) { // else it moved on (a delete came first): nothing to expire
			log.WarnContext(ctx, "expire: mark sandbox "+status, slog.Any("err", err))
		}
		return
	}
	w.submit(ctx, args, &task.SubmitParams{ProjectID: vm.ProjectID, VMID: vm.ID, Route: w.cfg.ID})
}

// submit creates a task through task.Submit, logging failures: the worker's
// own tasks come from sweeps that try again (an unsent message is re-sent by
// the reconciler).
func (w *Worker) submit(ctx context.Context, args task.Args, p *task.SubmitParams) {
	t, err := task.Submit(ctx, w.store, w.queue, args, p)
	attrs := []any{slog.String("type", args.Kind()), slog.String("sandbox_id", p.VMID)}
	if t != nil {
		attrs = append(attrs, slog.String("task_id", t.ID))
	}
	warnIf(ctx, w.log, "submit task", err, attrs...)
}

// vmPause freezes a sandbox (cgroup freezer for Docker); memory is kept.
func (w *Worker) vmPause(ctx context.Context, t *store.Task, _ task.VMPauseArgs) (*task.VMResult, error) {
	return w.setFrozen(ctx, t, true)
}

// vmResume thaws a paused sandbox.
func (w *Worker) vmResume(ctx context.Context, t *store.Task, _ task.VMResumeArgs) (*task.VMResult, error) {
	return w.setFrozen(ctx, t, false)
}

func (w *Worker) setFrozen(ctx context.Context, t *store.Task, freeze bool) (*task.VMResult, error) {
	p, ok := w.rt.(sandbox.Pauser)
	if !ok {
		return nil, errdefs.FailedPrecondition("this worker's runtime cannot pause sandboxes")
	}
	vm, err := w.store.VMGet(ctx, &store.VMGetParams{ProjectID: t.ProjectID, IDOrName: t.VMID})
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
	params := &store.VMUpdateParams{ID: vm.ID, Status: &status}
	if !freeze {
		now := time.Now()
		params.LastActiveAt = &now // a resumed sandbox starts a fresh idle period
	}
	if _, err := w.store.VMUpdate(ctx, params); err != nil {
		return nil, err
	}
	return &task.VMResult{VMID: vm.ID, Status: status}, nil
}

// vmSnapshot saves a sandbox's current filesystem as a ready template, so a
// prepared environment can be forked into new sandboxes.
func (w *Worker) vmSnapshot(ctx context.Context, t *store.Task, a task.VMSnapshotArgs) (*task.TemplateResult, error) {
	committer, ok := w.rt.(sandbox.Committer)
	if !ok {
		return nil, errdefs.FailedPrecondition("this worker's runtime cannot snapshot sandboxes")
	}
	vm, err := w.store.VMGet(ctx, &store.VMGetParams{ProjectID: t.ProjectID, IDOrName: t.VMID})
	if err != nil {
		return nil, err
	}
	tpl, err := w.store.TemplateGet(ctx, &store.TemplateGetParams{ProjectID: t.ProjectID, IDOrName: a.TemplateID})
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
	return &task.TemplateResult{Template: tpl.Name, Image: ref, ToolsInstalled: vm.ToolsInstalled}, nil
}

// failVMSnapshot marks the template of a finally failed snapshot failed.
func (w *Worker) failVMSnapshot(ctx context.Context, _ *store.Task, a task.VMSnapshotArgs, msg string) error {
	return w.failTemplate(ctx, a.TemplateID, msg)
}

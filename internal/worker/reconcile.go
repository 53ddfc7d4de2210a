package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/store"
)

// Reconcile makes the runtime and the queue agree with the store, after a
// crash or a lost message. Each step is idempotent and logs what it changed:
//   - machines the store does not want (unknown or deleted sandboxes) are
//     removed; a failed sandbox keeps its machine for inspection until deleted;
//   - sandboxes that should run but whose machine stopped are started again,
//     and ones whose machine is gone are marked failed;
//   - pending tasks whose message may be lost are enqueued again;
//   - tasks stuck running or pending past their type's deadline are failed.
//   - other workers that stopped heartbeating lose their sandboxes (status
//     lost) and their unfinished tasks fail with the reason; this worker's
//     own lost sandboxes whose machines survived are adopted again.
func (w *Worker) Reconcile(ctx context.Context) {
	w.reconcileMachines(ctx)
	w.sweepDeadWorkers(ctx)
	w.reconcileTasks(ctx)
}

func (w *Worker) reconcileMachines(ctx context.Context) {
	infos, err := w.rt.List(ctx)
	if err != nil {
		w.log.WarnContext(ctx, "reconcile: list machines", slog.Any("err", err))
		return
	}
	seen := map[string]*sandbox.Info{}
	for _, info := range infos {
		seen[info.ID] = info
		vm, err := w.store.VMGet(ctx, &store.VMGetParams{ProjectID: store.DefaultProjectID, IDOrName: info.ID})
		if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			continue
		}
		if vm == nil || vm.Status == store.VMDeleted {
			w.log.InfoContext(ctx, "reconcile: removing orphan machine", slog.String("sandbox_id", info.ID))
			w.destroy(ctx, info.ID)
			continue
		}
		if vm.Status == store.VMLost {
			w.log.InfoContext(ctx, "reconcile: adopting sandbox again", slog.String("sandbox_id", vm.ID))
			running, empty := store.VMRunning, ""
			w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &running, Error: &empty})
			vm.Status = running
		}
		if (vm.Status == store.VMRunning || vm.Status == store.VMPooled) && info.State != sandbox.StateRunning && info.State != sandbox.StatePaused {
			w.log.InfoContext(ctx, "reconcile: restarting stopped sandbox", slog.String("sandbox_id", vm.ID))
			w.agents.Forget(vm.ID)
			if err := w.rt.Start(ctx, vm.ID); err != nil {
				w.log.WarnContext(ctx, "reconcile: restart", slog.String("sandbox_id", vm.ID), slog.Any("err", err))
			} else if info, err = w.rt.Inspect(ctx, vm.ID); err == nil && info.Address != vm.IPAddress {
				// Docker may hand a restarted container another address.
				w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, IPAddress: &info.Address})
			}
		}
	}
	vms, err := w.store.VMList(ctx, &store.VMListParams{ProjectID: store.DefaultProjectID, WorkerID: w.cfg.ID})
	if err != nil {
		return
	}
	pool, err := w.store.VMList(ctx, &store.VMListParams{ProjectID: store.DefaultProjectID, WorkerID: w.cfg.ID, Pooled: true})
	if err != nil {
		return
	}
	for _, vm := range pool {
		if vm.Status == store.VMPooled && seen[vm.ID] == nil {
			w.retire(ctx, vm.ID) // its machine vanished; the pool refills
		}
	}
	for _, vm := range vms {
		if (vm.Status == store.VMRunning || vm.Status == store.VMLost) && seen[vm.ID] == nil {
			failed, msg := store.VMFailed, "the sandbox's machine disappeared from the runtime"
			w.log.WarnContext(ctx, "reconcile: "+msg, slog.String("sandbox_id", vm.ID))
			w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &failed, Error: &msg})
		}
	}
}

// deadline is how long a task of a type may take in all, retries included,
// before the reconciler gives up on it.
func deadline(t *store.Task) time.Duration {
	return time.Duration(t.MaxRetries+1)*(TaskTimeout(t)+time.Minute) + 5*time.Minute
}

func (w *Worker) reconcileTasks(ctx context.Context) {
	now := time.Now()
	pending, err := w.store.TaskList(ctx, &store.TaskListParams{Status: store.TaskPending, CreatedBefore: now.Add(-w.cfg.RequeueAfter)})
	if err != nil {
		w.log.WarnContext(ctx, "reconcile: list pending tasks", slog.Any("err", err))
		return
	}
	for _, t := range pending {
		if now.Sub(t.CreatedAt) > deadline(t) {
			w.fail(ctx, t, "the task was never completed by any worker (lost message)")
			continue
		}
		if err := Enqueue(ctx, w.queue, t, w.routeOf(ctx, t)); err != nil {
			w.log.WarnContext(ctx, "reconcile: re-enqueue", slog.String("task_id", t.ID), slog.Any("err", err))
		}
	}
	running, err := w.store.TaskList(ctx, &store.TaskListParams{Status: store.TaskRunning})
	if err != nil {
		return
	}
	for _, t := range running {
		if t.StartedAt != nil && now.Sub(*t.StartedAt) > TaskTimeout(t)+2*time.Minute {
			w.fail(ctx, t, "the worker running the task stopped before finishing it")
		}
	}
}

func (w *Worker) fail(ctx context.Context, t *store.Task, msg string) {
	w.log.WarnContext(ctx, "reconcile: failing task", slog.String("task_id", t.ID), slog.String("reason", msg))
	w.onFinalFailure(ctx, t, msg)
	w.store.TaskUpdate(ctx, &store.TaskUpdateParams{ID: t.ID, Status: store.TaskFailed, Error: &msg})
}

// routeOf is the worker a task must run on: its sandbox's owner, or any.
func (w *Worker) routeOf(ctx context.Context, t *store.Task) string {
	if t.VMID == "" {
		return ""
	}
	vm, err := w.store.VMGet(ctx, &store.VMGetParams{ProjectID: t.ProjectID, IDOrName: t.VMID})
	if err != nil || vm.Status == store.VMLost {
		return "" // any live worker settles a lost sandbox's delete
	}
	return vm.WorkerID
}

// sweepDeadWorkers marks the sandboxes of workers that stopped heartbeating
// as lost and fails their unfinished tasks, so nothing waits on a dead host.
// Every live worker runs it; each step is idempotent.
func (w *Worker) sweepDeadWorkers(ctx context.Context) {
	workers, err := w.store.WorkerList(ctx)
	if err != nil {
		return
	}
	now := time.Now()
	dead := map[string]bool{}
	for _, o := range workers {
		if o.ID != w.cfg.ID && now.Sub(o.HeartbeatAt) > w.cfg.DeadAfter {
			dead[o.ID] = true
		}
	}
	if len(dead) == 0 {
		return
	}
	lostVMs := map[string]string{}
	for id := range dead {
		vms, err := w.store.VMList(ctx, &store.VMListParams{ProjectID: store.DefaultProjectID, WorkerID: id})
		if err != nil {
			return
		}
		pool, _ := w.store.VMList(ctx, &store.VMListParams{ProjectID: store.DefaultProjectID, WorkerID: id, Pooled: true})
		for _, vm := range pool {
			if vm.Status == store.VMPooled {
				// Never hand out a sandbox on a dead host; its machine is
				// removed as an orphan when the worker returns.
				deleted := store.VMDeleted
				w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &deleted})
			}
		}
		for _, vm := range vms {
			lostVMs[vm.ID] = id
			if vm.Status == store.VMRunning || vm.Status == store.VMCreating {
				lost, msg := store.VMLost, fmt.Sprintf("worker %s stopped heartbeating", id)
				w.log.WarnContext(ctx, "reconcile: sandbox lost", slog.String("sandbox_id", vm.ID), slog.String("owner", id))
				w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &lost, Error: &msg})
			}
		}
	}
	for _, status := range []string{store.TaskPending, store.TaskRunning} {
		tasks, err := w.store.TaskList(ctx, &store.TaskListParams{Status: status})
		if err != nil {
			return
		}
		for _, t := range tasks {
			owner, onLost := lostVMs[t.VMID]
			if t.Type == TypeVMDelete && status == store.TaskPending {
				continue // re-sent to any worker by reconcileTasks
			}
			switch {
			case status == store.TaskRunning && dead[t.WorkerID]:
				w.fail(ctx, t, fmt.Sprintf("worker %s stopped heartbeating while running the task", t.WorkerID))
			case onLost:
				w.fail(ctx, t, fmt.Sprintf("sandbox's worker %s stopped heartbeating", owner))
			}
		}
	}
}

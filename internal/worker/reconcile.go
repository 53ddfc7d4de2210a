package worker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/store"
)

// requeueAfter is how old a pending task must be before the reconciler
// re-sends its message: enqueue right after insert normally does it.
const requeueAfter = 15 * time.Second

// Reconcile makes the runtime and the queue agree with the store, after a
// crash or a lost message. Each step is idempotent and logs what it changed:
//   - machines the store does not want (unknown, deleted, failed) are removed;
//   - sandboxes that should run but whose machine stopped are started again,
//     and ones whose machine is gone are marked failed;
//   - pending tasks whose message may be lost are enqueued again;
//   - tasks stuck running or pending past their type's deadline are failed.
func (w *Worker) Reconcile(ctx context.Context) {
	w.reconcileMachines(ctx)
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
		if vm == nil || vm.Status == store.VMDeleted || vm.Status == store.VMFailed {
			w.log.InfoContext(ctx, "reconcile: removing orphan machine", slog.String("sandbox_id", info.ID))
			w.destroy(ctx, info.ID)
			continue
		}
		if vm.Status == store.VMRunning && info.State != sandbox.StateRunning && info.State != sandbox.StatePaused {
			w.log.InfoContext(ctx, "reconcile: restarting stopped sandbox", slog.String("sandbox_id", vm.ID))
			w.agents.Forget(vm.ID)
			if err := w.rt.Start(ctx, vm.ID); err != nil {
				w.log.WarnContext(ctx, "reconcile: restart", slog.String("sandbox_id", vm.ID), slog.Any("err", err))
			}
		}
	}
	vms, err := w.store.VMList(ctx, &store.VMListParams{ProjectID: store.DefaultProjectID, WorkerID: w.cfg.ID})
	if err != nil {
		return
	}
	for _, vm := range vms {
		if vm.Status == store.VMRunning && seen[vm.ID] == nil {
			failed, msg := store.VMFailed, "the sandbox's machine disappeared from the runtime"
			w.log.WarnContext(ctx, "reconcile: "+msg, slog.String("sandbox_id", vm.ID))
			w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &failed, Error: &msg})
		}
	}
}

// deadline is how long a task of a type may take in all, retries included,
// before the reconciler gives up on it.
func deadline(taskType string) time.Duration {
	p, ok := Policies[taskType]
	if !ok {
		return time.Hour
	}
	return time.Duration(p.MaxRetries+1)*(p.Timeout+time.Minute) + 5*time.Minute
}

func (w *Worker) reconcileTasks(ctx context.Context) {
	now := time.Now()
	pending, err := w.store.TaskList(ctx, &store.TaskListParams{Status: store.TaskPending, CreatedBefore: now.Add(-requeueAfter)})
	if err != nil {
		w.log.WarnContext(ctx, "reconcile: list pending tasks", slog.Any("err", err))
		return
	}
	for _, t := range pending {
		if now.Sub(t.CreatedAt) > deadline(t.Type) {
			w.fail(ctx, t, "the task was never completed by any worker (lost message)")
			continue
		}
		if err := Enqueue(ctx, w.queue, t, 0); err != nil {
			w.log.WarnContext(ctx, "reconcile: re-enqueue", slog.String("task_id", t.ID), slog.Any("err", err))
		}
	}
	running, err := w.store.TaskList(ctx, &store.TaskListParams{Status: store.TaskRunning})
	if err != nil {
		return
	}
	for _, t := range running {
		if t.StartedAt != nil && now.Sub(*t.StartedAt) > Policies[t.Type].Timeout+2*time.Minute {
			w.fail(ctx, t, "the worker running the task stopped before finishing it")
		}
	}
}

func (w *Worker) fail(ctx context.Context, t *store.Task, msg string) {
	w.log.WarnContext(ctx, "reconcile: failing task", slog.String("task_id", t.ID), slog.String("reason", msg))
	if _, err := w.store.TaskUpdate(ctx, &store.TaskUpdateParams{ID: t.ID, Status: store.TaskFailed, Error: &msg}); err == nil {
		w.onFinalFailure(ctx, t, msg)
	}
}

package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/aetherium/aetherium/internal/cluster"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
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
	w.checkDisks(ctx)
	w.sweepDeadWorkers(ctx)
	w.reconcileTasks(ctx)
	w.pruneHistory(ctx)
}

// pruneBatch and pruneBatches bound one reconcile's history sweep: a backlog
// is worked off over several reconciles, never in one long transaction.
const (
	pruneBatch   = 1000
	pruneBatches = 20
)

// pruneHistory deletes finished executions, tasks, jobs and audit entries
// older than the retention (none when it is 0).
func (w *Worker) pruneHistory(ctx context.Context) {
	if w.cfg.Retention <= 0 {
		return
	}
	before := time.Now().Add(-w.cfg.Retention)
	var total int64
	for range pruneBatches {
		n, err := w.store.HistoryPrune(ctx, before, pruneBatch)
		total += n
		if err != nil {
			w.log.WarnContext(ctx, "reconcile: prune history", slog.Any("err", err))
			break
		}
		if n == 0 {
			break
		}
	}
	if total > 0 {
		w.log.InfoContext(ctx, "reconcile: pruned history", slog.Int64("rows", total), slog.Time("before", before))
	}
}

func (w *Worker) reconcileMachines(ctx context.Context) {
	infos, err := w.rt.List(ctx)
	if err != nil {
		w.log.WarnContext(ctx, "reconcile: list machines", slog.Any("err", err))
		return
	}
	// This worker's rows in two queries, not one per machine: a reconcile
	// of 500 sandboxes made 500 lookups.
	vms, pool, err := w.ownRows(ctx)
	if err != nil {
		w.log.WarnContext(ctx, "reconcile: list sandboxes", slog.Any("err", err))
		return
	}
	rows := make(map[string]*store.VM, len(vms)+len(pool))
	for _, vm := range slices.Concat(vms, pool) {
		rows[vm.ID] = vm
	}
	seen := map[string]*sandbox.Info{}
	for _, info := range infos {
		seen[info.ID] = info
		vm := rows[info.ID]
		if vm == nil { // deleted, or not (yet) this worker's row: ask for it
			vm, err = w.store.VMGet(ctx, &store.VMGetParams{ProjectID: store.AllProjects, IDOrName: info.ID})
			if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				w.log.WarnContext(ctx, "reconcile: get sandbox", slog.String("sandbox_id", info.ID), slog.Any("err", err))
				continue
			}
		}
		if vm == nil || vm.Status == store.VMDeleted {
			w.log.InfoContext(ctx, "reconcile: removing orphan machine", slog.String("sandbox_id", info.ID))
			w.discard(ctx, info.ID)
			continue
		}
		w.reconcileMachine(ctx, vm, info)
	}
	w.reconcileVanished(ctx, vms, pool, seen)
}

// ownRows lists this worker's live sandboxes and its pool sandboxes.
func (w *Worker) ownRows(ctx context.Context) (vms, pool []*store.VM, err error) {
	vms, err = w.store.VMList(ctx, &store.VMListParams{ProjectID: store.AllProjects, WorkerID: w.cfg.ID})
	if err != nil {
		return nil, nil, err
	}
	pool, err = w.store.VMList(ctx, &store.VMListParams{ProjectID: store.AllProjects, WorkerID: w.cfg.ID, Pooled: true})
	return vms, pool, err
}

// reconcileMachine adopts a lost sandbox whose machine survived and restarts
// a machine that stopped although its sandbox should run.
func (w *Worker) reconcileMachine(ctx context.Context, vm *store.VM, info *sandbox.Info) {
	log := w.log.With(slog.String("sandbox_id", vm.ID))
	if vm.Status == store.VMLost {
		log.InfoContext(ctx, "reconcile: adopting sandbox again")
		running, empty := store.VMRunning, ""
		if _, err := w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &running, Error: &empty,
			IfStatus: []string{store.VMLost}}); err != nil {
			log.WarnContext(ctx, "reconcile: adopt sandbox", slog.Any("err", err))
			return
		}
		vm.Status = running
	}
	if (vm.Status != store.VMRunning && vm.Status != store.VMPooled) || info.State == sandbox.StateRunning || info.State == sandbox.StatePaused {
		return
	}
	log.InfoContext(ctx, "reconcile: restarting stopped sandbox")
	w.agents.Forget(vm.ID)
	if err := w.rt.Start(ctx, vm.ID); err != nil {
		log.WarnContext(ctx, "reconcile: restart", slog.Any("err", err))
		return
	}
	info, err := w.rt.Inspect(ctx, vm.ID)
	if err != nil || info.Address == vm.IPAddress {
		warnIf(ctx, log, "reconcile: inspect restarted sandbox", err)
		return
	}
	// Docker may hand a restarted container another address.
	_, err = w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, IPAddress: &info.Address})
	warnIf(ctx, log, "reconcile: record new address", err)
}

// reconcileVanished handles this worker's sandboxes (vms, pool) whose
// machine is not among seen: a pool sandbox is retired (the pool refills),
// a running or lost one is marked failed.
func (w *Worker) reconcileVanished(ctx context.Context, vms, pool []*store.VM, seen map[string]*sandbox.Info) {
	for _, vm := range pool {
		if vm.Status == store.VMPooled && seen[vm.ID] == nil {
			w.retire(ctx, vm.ID)
		}
	}
	for _, vm := range vms {
		if (vm.Status == store.VMRunning || vm.Status == store.VMLost) && seen[vm.ID] == nil {
			failed, msg := store.VMFailed, "the sandbox's machine disappeared from the runtime"
			w.log.WarnContext(ctx, "reconcile: "+msg, slog.String("sandbox_id", vm.ID))
			_, err := w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &failed, Error: &msg, IfStatus: []string{vm.Status}})
			warnIf(ctx, w.log, "reconcile: mark sandbox failed", ignoreConflict(err), slog.String("sandbox_id", vm.ID))
		}
	}
}

// deadline is how long a task of a type may take in all, retries included,
// before the reconciler gives up on it.
func deadline(t *store.Task) time.Duration {
	return time.Duration(t.MaxRetries+1)*(task.Timeout(t)+time.Minute) + 5*time.Minute
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
		if err := task.Enqueue(ctx, w.queue, t, w.routeOf(ctx, t)); err != nil {
			w.log.WarnContext(ctx, "reconcile: re-enqueue", slog.String("task_id", t.ID), slog.Any("err", err))
		}
	}
	running, err := w.store.TaskList(ctx, &store.TaskListParams{Status: store.TaskRunning})
	if err != nil {
		w.log.WarnContext(ctx, "reconcile: list running tasks", slog.Any("err", err))
		return
	}
	for _, t := range running {
		if t.StartedAt != nil && now.Sub(*t.StartedAt) > task.Timeout(t)+2*time.Minute {
			w.fail(ctx, t, "the worker running the task stopped before finishing it")
		}
	}
}

// fail fails a task no worker will finish, settling its rows first.
func (w *Worker) fail(ctx context.Context, t *store.Task, msg string) {
	log := w.log.With(slog.String("task_id", t.ID), slog.String("type", t.Type))
	log.WarnContext(ctx, "reconcile: failing task", slog.String("reason", msg))
	w.failTask(ctx, log, t, msg)
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
		w.log.WarnContext(ctx, "reconcile: list workers", slog.Any("err", err))
		return
	}
	now := time.Now()
	dead := map[string]bool{}
	for _, o := range workers {
		if o.ID != w.cfg.ID && !cluster.Alive(o, now, w.cfg.DeadAfter) {
			dead[o.ID] = true
		}
	}
	if len(dead) == 0 {
		return
	}
	lostVMs := map[string]string{}
	for id := range dead {
		vms, err := w.loseSandboxes(ctx, id)
		if err != nil {
			w.log.WarnContext(ctx, "reconcile: list a dead worker's sandboxes", slog.String("owner", id), slog.Any("err", err))
			return
		}
		for _, vm := range vms {
			lostVMs[vm.ID] = id
		}
	}
	w.failLostTasks(ctx, dead, lostVMs)
}

// loseSandboxes marks the sandboxes of the dead worker id lost (its pool
// sandboxes deleted) and returns its sandboxes. Failed writes are logged;
// the next sweep repeats them.
func (w *Worker) loseSandboxes(ctx context.Context, id string) ([]*store.VM, error) {
	vms, err := w.store.VMList(ctx, &store.VMListParams{ProjectID: store.AllProjects, WorkerID: id})
	if err != nil {
		return nil, err
	}
	pool, err := w.store.VMList(ctx, &store.VMListParams{ProjectID: store.AllProjects, WorkerID: id, Pooled: true})
	if err != nil {
		return nil, err
	}
	for _, vm := range pool {
		if vm.Status == store.VMPooled {
			// Never hand out a sandbox on a dead host; its machine is
			// removed as an orphan when the worker returns.
			deleted := store.VMDeleted
			_, err := w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &deleted, IfStatus: []string{store.VMPooled}})
			warnIf(ctx, w.log, "reconcile: delete a dead worker's pool sandbox", ignoreConflict(err), slog.String("sandbox_id", vm.ID))
		}
	}
	for _, vm := range vms {
		if vm.Status == store.VMRunning || vm.Status == store.VMCreating {
			lost, msg := store.VMLost, fmt.Sprintf("worker %s stopped heartbeating", id)
			w.log.WarnContext(ctx, "reconcile: sandbox lost", slog.String("sandbox_id", vm.ID), slog.String("owner", id))
			_, err := w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &lost, Error: &msg, IfStatus: []string{vm.Status}})
			warnIf(ctx, w.log, "reconcile: mark sandbox lost", ignoreConflict(err), slog.String("sandbox_id", vm.ID))
		}
	}
	return vms, nil
}

// failLostTasks fails the unfinished tasks that ran on a dead worker or act
// on a sandbox of one (lostVMs: sandbox ID -> its dead owner).
func (w *Worker) failLostTasks(ctx context.Context, dead map[string]bool, lostVMs map[string]string) {
	for _, status := range []string{store.TaskPending, store.TaskRunning} {
		tasks, err := w.store.TaskList(ctx, &store.TaskListParams{Status: status})
		if err != nil {
			w.log.WarnContext(ctx, "reconcile: list tasks", slog.String("status", status), slog.Any("err", err))
			return
		}
		for _, t := range tasks {
			owner, onLost := lostVMs[t.VMID]
			if t.Type == task.KindVMDelete && status == store.TaskPending {
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

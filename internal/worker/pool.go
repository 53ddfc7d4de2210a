package worker

import (
	"context"
	"log/slog"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// maxPoolStarts bounds pool sandboxes being created at once per template,
// so refilling never floods the runtime.
const maxPoolStarts = 2

// fillPools keeps each of this worker's ready templates at its pool size:
// it starts missing pool sandboxes (through vm:create tasks, so they show in
// history) and deletes extra ones when the size shrank. Pool sandboxes count
// against the worker's capacity like any other: a full worker starts none.
func (w *Worker) fillPools(ctx context.Context) {
	tpls, err := w.store.TemplateList(ctx, store.AllProjects)
	if err != nil {
		w.log.WarnContext(ctx, "pool refill: list templates", slog.Any("err", err))
		return
	}
	pool, err := w.store.VMList(ctx, &store.VMListParams{ProjectID: store.AllProjects, WorkerID: w.cfg.ID, Pooled: true})
	if err != nil {
		w.log.WarnContext(ctx, "pool refill: list pool sandboxes", slog.Any("err", err))
		return
	}
	ready, starting := map[string][]*store.VM{}, map[string]int{}
	for _, vm := range pool {
		switch vm.Status {
		case store.VMPooled:
			ready[vm.Template] = append(ready[vm.Template], vm)
		case store.VMCreating:
			starting[vm.Template]++
		}
	}
	me := &store.Worker{Capacity: w.cfg.Capacity, VCPUs: w.cfg.VCPUs, MemoryMB: w.cfg.MemoryMB}
	var l *store.Load // read once a pool needs filling: the sweep runs every second
	for _, t := range tpls {
		if t.WorkerID != w.cfg.ID || t.Status != store.TemplateReady {
			continue
		}
		have := len(ready[t.ID]) + starting[t.ID]
		if have < t.PoolSize && l == nil {
			load, err := w.store.WorkerLoad(ctx)
			if err != nil {
				w.log.WarnContext(ctx, "pool refill: worker load", slog.Any("err", err))
				return
			}
			cur := load[w.cfg.ID]
			l = &cur
		}
		for i := have; i < t.PoolSize && starting[t.ID] < maxPoolStarts && room(me, l); i++ {
			if err := w.startPoolSandbox(ctx, t); err != nil {
				w.log.WarnContext(ctx, "pool refill", slog.String("template", t.Name), slog.Any("err", err))
				break
			}
			starting[t.ID]++
		}
		if starting[t.ID] == 0 && len(ready[t.ID]) > t.PoolSize {
			for _, vm := range ready[t.ID][t.PoolSize:] {
				w.retire(ctx, vm.ID) // the pool shrank
			}
		}
	}
}

// startPoolSandbox submits the vm:create of one pool sandbox of t on this
// worker (low priority: see task.VMCreateArgs.Pool). An error means no task
// was created; an unsent message is only logged, the reconciler sends it.
func (w *Worker) startPoolSandbox(ctx context.Context, t *store.Template) error {
	id := uuid.NewString()
	tk, err := task.Submit(ctx, w.store, w.queue, task.VMCreateArgs{Pool: true}, &task.SubmitParams{
		ProjectID: t.ProjectID, Route: w.cfg.ID,
		VM: &store.VMInsertParams{ID: id, Name: store.PoolNamePrefix + id[:13], Image: t.Image, Template: t.ID,
			Runtime: w.cfg.RuntimeName, VCPUs: task.PoolVCPUs, MemoryMB: task.PoolMemoryMB, WorkerID: w.cfg.ID}})
	if tk == nil {
		return err
	}
	warnIf(ctx, w.log, "pool refill", err, slog.String("task_id", tk.ID), slog.String("sandbox_id", id))
	return nil
}

// drainPool removes a template's pool sandboxes (the template is going
// away). Only listing them can fail; each removal is logged by retire.
func (w *Worker) drainPool(ctx context.Context, templateID string) error {
	pool, err := w.store.VMList(ctx, &store.VMListParams{ProjectID: store.AllProjects, WorkerID: w.cfg.ID, Pooled: true})
	if err != nil {
		return err
	}
	for _, vm := range pool {
		if vm.Template == templateID {
			w.retire(ctx, vm.ID)
		}
	}
	return nil
}

// room reports whether w has room for one more pool sandbox on top of l,
// and if so counts it into l.
func room(w *store.Worker, l *store.Load) bool {
	if ok, _ := w.Room(*l, task.PoolVCPUs, task.PoolMemoryMB); !ok {
		return false
	}
	l.Sandboxes, l.VCPUs, l.MemoryMB = l.Sandboxes+1, l.VCPUs+task.PoolVCPUs, l.MemoryMB+task.PoolMemoryMB
	return true
}

package worker

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/store"
)

// Pool sandboxes are created with these resources; a create asking for
// others does not take from the pool.
const (
	PoolVCPUs    = 1
	PoolMemoryMB = 512
)

// maxPoolStarts bounds pool sandboxes being created at once per template,
// so refilling never floods the runtime.
const maxPoolStarts = 2

// fillPools keeps each of this worker's ready templates at its pool size:
// it starts missing pool sandboxes (through vm:create tasks, so they show in
// history) and deletes extra ones when the size shrank.
func (w *Worker) fillPools(ctx context.Context) {
	tpls, err := w.store.TemplateList(ctx, store.DefaultProjectID)
	if err != nil {
		return
	}
	pool, err := w.store.VMList(ctx, &store.VMListParams{ProjectID: store.DefaultProjectID, WorkerID: w.cfg.ID, Pooled: true})
	if err != nil {
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
	for _, t := range tpls {
		if t.WorkerID != w.cfg.ID || t.Status != store.TemplateReady {
			continue
		}
		have := len(ready[t.ID]) + starting[t.ID]
		for i := have; i < t.PoolSize && starting[t.ID] < maxPoolStarts; i++ {
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

func (w *Worker) startPoolSandbox(ctx context.Context, t *store.Template) error {
	p := Policies[TypeVMCreate]
	payload, _ := json.Marshal(CreatePayload{Pool: true})
	id := uuid.NewString()
	task, err := w.store.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: t.ProjectID, Type: TypeVMCreate,
		Priority: "low", MaxRetries: p.MaxRetries, Payload: payload,
		VM: &store.VMInsertParams{ID: id, Name: store.PoolNamePrefix + id[:13], Image: t.Image, Template: t.ID,
			Runtime: w.cfg.RuntimeName, VCPUs: PoolVCPUs, MemoryMB: PoolMemoryMB, WorkerID: w.cfg.ID}})
	if err != nil {
		return err
	}
	return Enqueue(ctx, w.queue, task, w.cfg.ID)
}

// drainPool removes a template's pool sandboxes (the template is going away).
func (w *Worker) drainPool(ctx context.Context, templateID string) {
	pool, err := w.store.VMList(ctx, &store.VMListParams{ProjectID: store.DefaultProjectID, WorkerID: w.cfg.ID, Pooled: true})
	if err != nil {
		return
	}
	for _, vm := range pool {
		if vm.Template == templateID {
			w.retire(ctx, vm.ID)
		}
	}
}

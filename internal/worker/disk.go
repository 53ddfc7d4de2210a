package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/store"
)

// checkDisks fails and stops this worker's sandboxes that wrote more than
// their disk limit, where the runtime has no quota to stop them
// (sandbox.DiskWatcher). The status is written first, guarded on running
// or pooled (a delete that came first wins, and nothing is stopped); the
// stopped machine keeps its data until the sandbox is deleted.
func (w *Worker) checkDisks(ctx context.Context) {
	dw, ok := w.rt.(sandbox.DiskWatcher)
	if !ok {
		return
	}
	over, err := dw.DiskOverruns(ctx)
	if err != nil {
		w.log.WarnContext(ctx, "reconcile: measure sandbox disks", slog.Any("err", err))
		return
	}
	for _, o := range over {
		log := w.log.With(slog.String("sandbox_id", o.ID))
		msg := fmt.Sprintf("disk: the sandbox wrote %d MiB, over its limit of %d MiB; stopped", o.UsedMB, o.LimitMB)
		failed := store.VMFailed
		_, err := w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: o.ID, Status: &failed, Error: &msg,
			IfStatus: []string{store.VMRunning, store.VMPooled}})
		if err != nil {
			if !errors.Is(err, errdefs.ErrConflict) && !errors.Is(err, errdefs.ErrNotFound) {
				log.WarnContext(ctx, "reconcile: fail sandbox over its disk limit", slog.Any("err", err))
			}
			continue
		}
		log.WarnContext(ctx, "sandbox over its disk limit: failed and stopped", slog.Int64("used_mb", o.UsedMB), slog.Int64("limit_mb", o.LimitMB))
		w.agents.Forget(o.ID)
		warnIf(ctx, log, "reconcile: stop sandbox over its disk limit", w.rt.Stop(ctx, o.ID))
	}
}

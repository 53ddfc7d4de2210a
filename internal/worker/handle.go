package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/store"
)

// Handle is the queue.Handler: it moves the task row through
// pending → running → succeeded|failed around the type's handler. It is
// idempotent: a delivery for a finished task does nothing.
func (w *Worker) Handle(ctx context.Context, d *queue.Delivery) error {
	log := w.log.With(slog.String("task_id", d.ID), slog.String("type", d.Type), slog.Int("attempt", d.Attempt))
	task, err := w.store.TaskGet(ctx, &store.TaskGetParams{ID: d.ID})
	if errors.Is(err, errdefs.ErrNotFound) {
		return queue.Permanent(err)
	}
	if err != nil {
		return err
	}
	if task.Terminal() {
		return nil
	}
	retries := d.Attempt - 1
	if task, err = w.store.TaskUpdate(ctx, &store.TaskUpdateParams{ID: task.ID, Status: store.TaskRunning,
		WorkerID: &w.cfg.ID, RetryCount: &retries}); err != nil {
		if errors.Is(err, errdefs.ErrConflict) {
			return nil // finished concurrently
		}
		return err
	}
	log.InfoContext(ctx, "task started")
	start := time.Now()
	result, herr := w.dispatch(ctx, task)
	// Record the outcome even when ctx was cancelled by shutdown.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return w.settle(sctx, log, task, d, result, herr, time.Since(start))
}

func (w *Worker) settle(ctx context.Context, log *slog.Logger, task *store.Task, d *queue.Delivery, result any, herr error, took time.Duration) error {
	if herr == nil {
		b, _ := json.Marshal(result)
		_, err := w.store.TaskUpdate(ctx, &store.TaskUpdateParams{ID: task.ID, Status: store.TaskSucceeded, Result: b})
		log.InfoContext(ctx, "task succeeded", slog.Duration("took", took))
		return err
	}
	msg := herr.Error()
	final := queue.IsPermanent(herr) || d.LastAttempt() || isPermanentClass(herr)
	if !final {
		// Handed back to the queue: a later delivery retries (or, on
		// shutdown, the next process does).
		w.store.TaskUpdate(ctx, &store.TaskUpdateParams{ID: task.ID, Status: store.TaskPending, Error: &msg})
		log.WarnContext(ctx, "task failed; will retry", slog.Any("err", herr))
		return herr
	}
	// The rows the task touched first, so whoever sees the task failed also
	// sees the sandbox or job in its final state.
	w.onFinalFailure(ctx, task, msg)
	w.store.TaskUpdate(ctx, &store.TaskUpdateParams{ID: task.ID, Status: store.TaskFailed, Error: &msg})
	log.WarnContext(ctx, "task failed", slog.Any("err", herr))
	return queue.Permanent(herr)
}

// isPermanentClass reports errors that retrying cannot fix.
func isPermanentClass(err error) bool {
	return errors.Is(err, errdefs.ErrInvalidArgument) || errors.Is(err, errdefs.ErrNotFound) ||
		errors.Is(err, errdefs.ErrFailedPrecondition) || errors.Is(err, errdefs.ErrNotImplemented) ||
		errors.Is(err, errdefs.ErrUnprocessable)
}

func (w *Worker) dispatch(ctx context.Context, task *store.Task) (any, error) {
	switch task.Type {
	case TypeVMCreate:
		return w.vmCreate(ctx, task)
	case TypeVMDelete:
		return w.vmDelete(ctx, task)
	case TypeVMExecute:
		return w.vmExecute(ctx, task)
	case TypeJobRun:
		return w.jobRun(ctx, task)
	case TypeImageBuild:
		return w.imageBuild(ctx, task)
	case TypeTemplate:
		return w.templateBuild(ctx, task)
	case TypeTemplateDelete:
		return w.templateDelete(ctx, task)
	case TypeVMPause:
		return w.vmPause(ctx, task)
	case TypeVMResume:
		return w.vmResume(ctx, task)
	case TypeVMSnapshot:
		return w.vmSnapshot(ctx, task)
	}
	return nil, queue.Permanent(fmt.Errorf("unknown task type %q", task.Type))
}

// onFinalFailure leaves the rows a failed task touched in a clear state.
func (w *Worker) onFinalFailure(ctx context.Context, task *store.Task, msg string) {
	switch task.Type {
	case TypeVMCreate:
		failed := store.VMFailed
		w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: task.VMID, Status: &failed, Error: &msg})
	case TypeJobRun:
		var p JobPayload
		json.Unmarshal(task.Payload, &p)
		w.store.JobUpdate(ctx, &store.JobUpdateParams{ID: p.JobID, Status: store.JobFailed, Error: &msg})
	case TypeVMSnapshot:
		var p SnapshotPayload
		json.Unmarshal(task.Payload, &p)
		w.store.TemplateUpdate(ctx, &store.TemplateUpdateParams{ID: p.TemplateID, Status: store.TemplateFailed, Error: &msg})
	case TypeTemplate:
		var p TemplatePayload
		json.Unmarshal(task.Payload, &p)
		w.store.TemplateUpdate(ctx, &store.TemplateUpdateParams{ID: p.TemplateID, Status: store.TemplateFailed, Error: &msg})
	}
}

func (w *Worker) setProgress(ctx context.Context, taskID, progress string) {
	w.store.TaskUpdate(ctx, &store.TaskUpdateParams{ID: taskID, Status: store.TaskRunning, Progress: &progress})
}

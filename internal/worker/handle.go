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
	"github.com/aetherium/aetherium/internal/task"
)

// kind is how the worker runs one kind of task.
type kind struct {
	// run does the work; what it returns is stored as the task's result.
	run func(ctx context.Context, t *store.Task) (any, error)
	// fail leaves the rows a finally failed task touched (its sandbox, job
	// or template) in a clear state; nil when the kind has none to settle.
	fail func(ctx context.Context, t *store.Task, msg string) error
}

// handlers registers one handler per task kind. Each is typed by its args:
// the payload is decoded before the handler runs, and one that does not
// decode fails the task for good.
func (w *Worker) handlers() map[string]kind {
	ks := map[string]kind{}
	register(ks, w.vmCreate, w.failVMCreate)
	register(ks, w.vmDelete, w.failVMDelete)
	register(ks, w.vmExecute, nil)
	register(ks, w.jobRun, w.failJobRun)
	register(ks, w.imageBuild, nil)
	register(ks, w.templateBuild, w.failTemplateBuild)
	register(ks, w.templateDelete, nil)
	register(ks, w.vmPause, nil)
	register(ks, w.vmResume, nil)
	register(ks, w.vmSnapshot, w.failVMSnapshot)
	register(ks, w.integrationReport, nil)
	register(ks, w.integrationArtifact, nil)
	return ks
}

// register adds the handler of args type A to ks. A kind registered twice
// panics: it is a wiring bug.
func register[A task.Args, R any](ks map[string]kind, run func(context.Context, *store.Task, A) (R, error),
	fail func(context.Context, *store.Task, A, string) error) {
	var zero A
	name := zero.Kind()
	if _, dup := ks[name]; dup {
		panic("worker: two handlers for task kind " + name)
	}
	k := kind{run: func(ctx context.Context, t *store.Task) (any, error) {
		a, err := task.Decode[A](t)
		if err != nil {
			return nil, queue.Permanent(err)
		}
		return run(ctx, t, a)
	}}
	if fail != nil {
		k.fail = func(ctx context.Context, t *store.Task, msg string) error {
			a, err := task.Decode[A](t)
			if err != nil {
				return err
			}
			return fail(ctx, t, a, msg)
		}
	}
	ks[name] = k
}

// Handle is the queue.Handler: it moves the task row through
// pending → running → succeeded|failed around its kind's handler. It is
// idempotent: a delivery for a finished task does nothing.
func (w *Worker) Handle(ctx context.Context, d *queue.Delivery) error {
	log := w.log.With(slog.String("task_id", d.ID), slog.String("type", d.Type), slog.Int("attempt", d.Attempt))
	t, err := w.store.TaskGet(ctx, &store.TaskGetParams{ID: d.ID})
	if errors.Is(err, errdefs.ErrNotFound) {
		return queue.Permanent(err)
	}
	if err != nil {
		return err
	}
	if t.Terminal() {
		return nil
	}
	retries := d.Attempt - 1
	if t, err = w.store.TaskUpdate(ctx, &store.TaskUpdateParams{ID: t.ID, Status: store.TaskRunning,
		WorkerID: &w.cfg.ID, RetryCount: &retries}); err != nil {
		if errors.Is(err, errdefs.ErrConflict) {
			return nil // finished concurrently
		}
		return err
	}
	log.InfoContext(ctx, "task started")
	start := time.Now()
	result, herr := w.run(ctx, t)
	// Record the outcome even when ctx was cancelled by shutdown.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return w.settle(sctx, log, t, d, result, herr, time.Since(start))
}

// run calls the handler of t's kind.
func (w *Worker) run(ctx context.Context, t *store.Task) (any, error) {
	k, ok := w.kinds[t.Type]
	if !ok {
		return nil, queue.Permanent(fmt.Errorf("%w: unknown task kind %q", errdefs.ErrNotImplemented, t.Type))
	}
	return k.run(ctx, t)
}

// settle records a handler's outcome on the task row. A success stores the
// result; a failure that may be retried hands the task back as pending and
// returns herr so the queue retries; a final failure settles the rows the
// task touched, then the task row, and returns herr as permanent.
func (w *Worker) settle(ctx context.Context, log *slog.Logger, t *store.Task, d *queue.Delivery, result any, herr error, took time.Duration) error {
	var b []byte
	if herr == nil {
		var err error
		if b, err = json.Marshal(result); err != nil {
			herr = queue.Permanent(fmt.Errorf("encode result: %w", err))
		}
	}
	if herr == nil {
		if _, err := w.store.TaskUpdate(ctx, &store.TaskUpdateParams{ID: t.ID, Status: store.TaskSucceeded, Result: b,
			Payload: task.Redact(t.Payload)}); err != nil {
			log.WarnContext(ctx, "task succeeded but could not be marked so", slog.Any("err", err))
			return err // a redelivery finds the work done (handlers are idempotent)
		}
		log.InfoContext(ctx, "task succeeded", slog.Duration("took", took))
		return nil
	}
	msg := herr.Error()
	if !queue.IsPermanent(herr) && !d.LastAttempt() && !isPermanentClass(herr) {
		// Handed back to the queue: a later delivery retries (or, on
		// shutdown, the next process does).
		_, err := w.store.TaskUpdate(ctx, &store.TaskUpdateParams{ID: t.ID, Status: store.TaskPending, Error: &msg})
		warnIf(ctx, log, "hand task back as pending", err)
		log.WarnContext(ctx, "task failed; will retry", slog.Any("err", herr))
		return herr
	}
	w.failTask(ctx, log, t, msg)
	log.WarnContext(ctx, "task failed", slog.Any("err", herr))
	return queue.Permanent(herr)
}

// failTask settles a task that failed for good: first the rows it touched,
// so whoever sees the task failed also sees the sandbox, job or template in
// its final state, then the task row. Store errors are logged: a task left
// running is failed later by the reconciler.
func (w *Worker) failTask(ctx context.Context, log *slog.Logger, t *store.Task, msg string) {
	if k, ok := w.kinds[t.Type]; ok && k.fail != nil {
		warnIf(ctx, log, "settle the rows of a failed task", k.fail(ctx, t, msg))
	}
	_, err := w.store.TaskUpdate(ctx, &store.TaskUpdateParams{ID: t.ID, Status: store.TaskFailed, Error: &msg,
		Payload: task.Redact(t.Payload)})
	warnIf(ctx, log, "mark task failed", err)
}

// isPermanentClass reports errors that retrying cannot fix. A conflict is a
// move the state machine refused (store.VMTransitions): the row has moved
// on, and a retry finds it moved on still.
func isPermanentClass(err error) bool {
	return errors.Is(err, errdefs.ErrInvalidArgument) || errors.Is(err, errdefs.ErrNotFound) ||
		errors.Is(err, errdefs.ErrConflict) ||
		errors.Is(err, errdefs.ErrFailedPrecondition) || errors.Is(err, errdefs.ErrNotImplemented) ||
		errors.Is(err, errdefs.ErrUnprocessable)
}

// setProgress shows what a running task is doing. A failed write is logged:
// progress is informational.
func (w *Worker) setProgress(ctx context.Context, taskID, progress string) {
	_, err := w.store.TaskUpdate(ctx, &store.TaskUpdateParams{ID: taskID, Status: store.TaskRunning, Progress: &progress})
	warnIf(ctx, w.log, "record task progress", err, slog.String("task_id", taskID))
}

// warnIf logs err, when it is not nil, with attrs: for a step whose failure
// the caller outlives (the reconciler repairs what it leaves behind).
func warnIf(ctx context.Context, log *slog.Logger, msg string, err error, attrs ...any) {
	if err != nil {
		log.WarnContext(ctx, msg, append(attrs, slog.Any("err", err))...)
	}
}

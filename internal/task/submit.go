package task

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/store"
)

// Store is the part of store.Store that Submit writes through.
type Store interface {
	TaskInsert(ctx context.Context, params *store.TaskInsertParams) (*store.Task, error)
	TaskUpdate(ctx context.Context, params *store.TaskUpdateParams) (*store.Task, error)
}

// Enqueuer is the part of queue.Queue that Submit and Enqueue send through.
type Enqueuer interface {
	Enqueue(ctx context.Context, msg *queue.Message) error
}

// ErrNotEnqueued marks a Submit whose row was inserted but whose message
// could not be sent. The task exists and stays pending; the reconciler sends
// its message later, so callers normally log the error and carry on.
var ErrNotEnqueued = errors.New("task inserted but not enqueued")

// SubmitParams says where a task belongs and which rows it creates.
type SubmitParams struct {
	// Job, when set, is inserted in the same transaction (job:run).
	Job *store.JobInsertParams
	// ProjectID owns the task. Required.
	ProjectID string
	// Result, when non-nil, records work that is already done (a create
	// answered from the warm pool): the task is inserted and marked
	// succeeded with Result as its result, and nothing is enqueued.
	Result any
	// Route is the worker that must run the task (the one owning its
	// sandbox or template); empty means any worker.
	Route string
	// Template, when set, is inserted in the same transaction
	// (template:build, vm:snapshot).
	Template *store.TemplateInsertParams
	// Timeout bounds one attempt; 0 means the args' Policy().Timeout.
	Timeout time.Duration
	// VM, when set, is inserted in the same transaction and becomes the
	// task's sandbox (vm:create, template:build).
	VM *store.VMInsertParams
	// VMID is the sandbox the task acts on; ignored when VM is set.
	VMID string
}

// Submit is the one way a task is created: it inserts the task row with the
// rows in p, in one transaction, with the args as payload and the args'
// policy (priority, retries, timeout), then enqueues its message to p.Route.
//
// An error with nothing created is returned as is (the store's classes, or
// ErrInvalidArgument for missing params). When the row was inserted but the
// message was not sent, Submit returns the task and an error wrapping
// ErrNotEnqueued. Submit is safe for concurrent use; each call creates a new
// task.
func Submit(ctx context.Context, st Store, q Enqueuer, args Args, p *SubmitParams) (*store.Task, error) {
	params, err := insertParams(args, p)
	if err != nil {
		return nil, err
	}
	t, err := st.TaskInsert(ctx, params)
	if err != nil {
		return nil, err
	}
	if p.Result != nil {
		return succeed(ctx, st, t, p.Result)
	}
	if err := Enqueue(ctx, q, t, p.Route); err != nil {
		return t, fmt.Errorf("%w: task %s: %w", ErrNotEnqueued, t.ID, err)
	}
	return t, nil
}

func insertParams(args Args, p *SubmitParams) (*store.TaskInsertParams, error) {
	if p == nil || p.ProjectID == "" {
		return nil, errdefs.InvalidArgument("task %s: project ID is required", args.Kind())
	}
	payload, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("task %s: encode args: %w", args.Kind(), err)
	}
	pol := args.Policy()
	if p.Timeout > 0 {
		pol.Timeout = p.Timeout
	}
	return &store.TaskInsertParams{Job: p.Job, MaxRetries: pol.MaxRetries, Payload: payload, Priority: pol.Priority,
		ProjectID: p.ProjectID, Template: p.Template, Timeout: pol.Timeout, Type: args.Kind(), VM: p.VM, VMID: p.VMID}, nil
}

func succeed(ctx context.Context, st Store, t *store.Task, result any) (*store.Task, error) {
	b, err := json.Marshal(result)
	if err != nil {
		return t, fmt.Errorf("task %s: encode result: %w", t.ID, err)
	}
	return st.TaskUpdate(ctx, &store.TaskUpdateParams{ID: t.ID, Status: store.TaskSucceeded, Result: b})
}

// Enqueue sends the message of an existing task row t, with the row's
// priority, retries and timeout, to route (empty means any worker). It is
// idempotent: the message ID is the task's ID. Submit calls it; the
// reconciler calls it again for pending rows whose message may be lost.
func Enqueue(ctx context.Context, q Enqueuer, t *store.Task, route string) error {
	return q.Enqueue(ctx, &queue.Message{ID: t.ID, Type: t.Type, Priority: t.Priority, MaxRetries: t.MaxRetries,
		Timeout: Timeout(t), Worker: route})
}

// Decode reads t's payload as A. A payload that does not decode, or a task
// of another kind, is ErrInvalidArgument: retrying cannot fix it.
func Decode[A Args](t *store.Task) (A, error) {
	var a A
	if t.Type != a.Kind() {
		return a, errdefs.InvalidArgument("task %s is %s, not %s", t.ID, t.Type, a.Kind())
	}
	if err := json.Unmarshal(t.Payload, &a); err != nil {
		return a, errdefs.InvalidArgument("task %s: bad %s payload: %v", t.ID, t.Type, err)
	}
	return a, nil
}

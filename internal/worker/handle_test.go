package worker

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// probeArgs is a task kind that exists only in tests.
type probeArgs struct {
	Note string `json:"note"`
}

func (probeArgs) Kind() string { return "test:probe" }
func (probeArgs) Policy() task.Policy {
	return task.Policy{Priority: queue.PriorityDefault, Timeout: time.Minute}
}

// TestHandle walks the task state machine: which rows are written in which
// order, and whether the queue is told to retry, for each outcome of a
// handler.
func TestHandle(t *testing.T) {
	t.Parallel()
	unavailable := errdefs.Unavailable("agent unreachable")
	tests := []struct {
		name        string
		status      string // the row's status when the delivery arrives
		kind        string
		payload     string
		runningErr  error // from marking the task running
		herr        error // from the handler
		attempt     int   // of 2
		wantWrites  []string
		wantRan     bool
		wantErr     string // "", "retry" or "permanent"
		wantMessage string // the failed or pending row's error
	}{
		{name: "success", status: store.TaskPending, attempt: 1, wantRan: true,
			wantWrites: []string{"TaskUpdate running", "TaskUpdate succeeded"}},
		{name: "retryable error hands the task back", status: store.TaskPending, attempt: 1, herr: unavailable, wantRan: true,
			wantWrites: []string{"TaskUpdate running", "TaskUpdate pending"}, wantErr: "retry", wantMessage: unavailable.Error()},
		{name: "last attempt settles rows before the task", status: store.TaskPending, attempt: 2, herr: unavailable, wantRan: true,
			wantWrites: []string{"TaskUpdate running", "VMUpdate settled-n failed", "TaskUpdate failed"}, wantErr: "permanent", wantMessage: unavailable.Error()},
		{name: "permanent error is final at once", status: store.TaskPending, attempt: 1, herr: queue.Permanent(errors.New("no")), wantRan: true,
			wantWrites: []string{"TaskUpdate running", "VMUpdate settled-n failed", "TaskUpdate failed"}, wantErr: "permanent", wantMessage: "no"},
		{name: "invalid argument is final at once", status: store.TaskPending, attempt: 1, herr: errdefs.InvalidArgument("bad"), wantRan: true,
			wantWrites: []string{"TaskUpdate running", "VMUpdate settled-n failed", "TaskUpdate failed"}, wantErr: "permanent", wantMessage: "bad"},
		{name: "failed precondition is final at once", status: store.TaskPending, attempt: 1, herr: errdefs.FailedPrecondition("paused"), wantRan: true,
			wantWrites: []string{"TaskUpdate running", "VMUpdate settled-n failed", "TaskUpdate failed"}, wantErr: "permanent", wantMessage: "paused"},
		{name: "terminal task is left alone", status: store.TaskSucceeded, attempt: 1},
		{name: "finished concurrently", status: store.TaskPending, attempt: 1, runningErr: errdefs.Conflict("terminal"),
			wantWrites: []string{"TaskUpdate running"}},
		{name: "bad payload fails without running", status: store.TaskPending, attempt: 1, payload: `{"note":`,
			wantWrites: []string{"TaskUpdate running", "TaskUpdate failed"}, wantErr: "permanent", wantMessage: "bad test:probe payload"},
		{name: "unknown kind fails without running", status: store.TaskPending, attempt: 1, kind: "test:nope",
			wantWrites: []string{"TaskUpdate running", "TaskUpdate failed"}, wantErr: "permanent", wantMessage: "unknown task kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kindName, payload := "test:probe", `{"note":"n"}`
			if tt.kind != "" {
				kindName = tt.kind
			}
			if tt.payload != "" {
				payload = tt.payload
			}
			var updates []*store.TaskUpdateParams
			st := &fakeStore{
				TaskGetImpl: func(_ context.Context, p *store.TaskGetParams) (*store.Task, error) {
					return &store.Task{ID: p.ID, Type: kindName, Status: tt.status, Payload: json.RawMessage(payload)}, nil
				},
				TaskUpdateImpl: func(_ context.Context, p *store.TaskUpdateParams) (*store.Task, error) {
					updates = append(updates, p)
					if p.Status == store.TaskRunning && tt.runningErr != nil {
						return nil, tt.runningErr
					}
					return &store.Task{ID: p.ID, Type: kindName, Status: p.Status, Payload: json.RawMessage(payload)}, nil
				},
				VMUpdateImpl: okVM,
			}
			w, _ := newTestWorker(t, st, nil)
			ran := false
			w.kinds = map[string]kind{}
			register(w.kinds, func(_ context.Context, _ *store.Task, a probeArgs) (*task.VMResult, error) {
				ran = true
				return &task.VMResult{VMID: a.Note, Status: "ok"}, tt.herr
			}, func(ctx context.Context, _ *store.Task, a probeArgs, msg string) error {
				failed := store.VMFailed
				_, err := st.VMUpdate(ctx, &store.VMUpdateParams{ID: "settled-" + a.Note, Status: &failed, Error: &msg})
				return err
			})

			err := w.Handle(t.Context(), &queue.Delivery{ID: "t1", Type: kindName, Attempt: tt.attempt, MaxAttempts: 2})

			if got := st.written(); len(got)+len(tt.wantWrites) > 0 && !reflect.DeepEqual(got, tt.wantWrites) {
				t.Errorf("writes = %q, want %q", got, tt.wantWrites)
			}
			if ran != tt.wantRan {
				t.Errorf("handler ran = %v, want %v", ran, tt.wantRan)
			}
			switch tt.wantErr {
			case "":
				if err != nil {
					t.Errorf("Handle = %v, want nil", err)
				}
			case "retry":
				if err == nil || queue.IsPermanent(err) {
					t.Errorf("Handle = %v, want an error the queue retries", err)
				}
			case "permanent":
				if !queue.IsPermanent(err) {
					t.Errorf("Handle = %v, want a permanent error", err)
				}
			}
			if len(updates) > 0 && (updates[0].WorkerID == nil || *updates[0].WorkerID != "w1" || *updates[0].RetryCount != tt.attempt-1) {
				t.Errorf("running update = %+v, want worker w1 and retry count %d", updates[0], tt.attempt-1)
			}
			if len(updates) == 0 {
				return
			}
			last := updates[len(updates)-1]
			if tt.wantMessage != "" && (last.Error == nil || !strings.Contains(*last.Error, tt.wantMessage)) {
				t.Errorf("last update = %+v, want error containing %q", last, tt.wantMessage)
			}
			if last.Status == store.TaskSucceeded && string(last.Result) != `{"vm_id":"n","status":"ok"}` {
				t.Errorf("result = %s, want the handler's result", last.Result)
			}
		})
	}
}

// TestFinalFailureSettlesRowsFirst runs the real handlers into a final
// failure: the sandbox, job or template the task touched is marked failed
// before the task row, so whoever sees the task failed sees them final too.
func TestFinalFailureSettlesRowsFirst(t *testing.T) {
	t.Parallel()
	down := errdefs.Unavailable("store down")
	tests := []struct {
		kind    string
		payload string
		want    []string
	}{
		{task.KindVMCreate, `{}`, []string{"TaskUpdate running", "VMUpdate vm1 failed", "TaskUpdate failed"}},
		{task.KindJobRun, `{"job_id":"j1"}`, []string{"TaskUpdate running", "JobUpdate j1 failed", "TaskUpdate failed"}},
		{task.KindTemplateBuild, `{"template_id":"tp1"}`, []string{"TaskUpdate running", "TemplateUpdate tp1 failed", "TaskUpdate failed"}},
		{task.KindVMSnapshot, `{"template_id":"tp1"}`, []string{"TaskUpdate running", "TemplateUpdate tp1 failed", "TaskUpdate failed"}},
		// A delete that gave up leaves the sandbox failed, never deleting forever (issue 10).
		{task.KindVMDelete, `{}`, []string{"TaskUpdate running", "VMUpdate vm1 failed", "TaskUpdate failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			t.Parallel()
			row := &store.Task{ID: "t1", ProjectID: "default", Type: tt.kind, Status: store.TaskPending, VMID: "vm1", Payload: json.RawMessage(tt.payload)}
			st := &fakeStore{
				TaskGetImpl:        func(context.Context, *store.TaskGetParams) (*store.Task, error) { return row, nil },
				TaskUpdateImpl:     func(context.Context, *store.TaskUpdateParams) (*store.Task, error) { return row, nil },
				VMGetImpl:          func(context.Context, *store.VMGetParams) (*store.VM, error) { return nil, down },
				JobGetImpl:         func(context.Context, *store.JobGetParams) (*store.Job, error) { return nil, down },
				VMUpdateImpl:       okVM,
				JobUpdateImpl:      okJob,
				TemplateGetImpl:    func(context.Context, *store.TemplateGetParams) (*store.Template, error) { return nil, down },
				TemplateUpdateImpl: okTemplate,
			}
			w, _ := newTestWorker(t, st, nil)
			err := w.Handle(t.Context(), &queue.Delivery{ID: "t1", Type: tt.kind, Attempt: 4, MaxAttempts: 4})
			if !queue.IsPermanent(err) {
				t.Errorf("Handle = %v, want a permanent error", err)
			}
			if got := st.written(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("writes = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestSettleLogsStoreFailures checks that writes whose failure the worker
// outlives are logged with the task's ID (they were once dropped silently).
func TestSettleLogsStoreFailures(t *testing.T) {
	t.Parallel()
	broken := errors.New("disk full")
	row := &store.Task{ID: "t9", Type: task.KindVMCreate, Status: store.TaskPending, VMID: "vm9", Payload: json.RawMessage(`{}`)}
	st := &fakeStore{
		TaskGetImpl: func(context.Context, *store.TaskGetParams) (*store.Task, error) { return row, nil },
		TaskUpdateImpl: func(_ context.Context, p *store.TaskUpdateParams) (*store.Task, error) {
			if p.Status == store.TaskFailed {
				return nil, broken
			}
			return row, nil
		},
		VMGetImpl:    func(context.Context, *store.VMGetParams) (*store.VM, error) { return nil, errdefs.NotFound("gone") },
		VMUpdateImpl: func(context.Context, *store.VMUpdateParams) (*store.VM, error) { return nil, broken },
	}
	w, logs := newTestWorker(t, st, nil)
	if err := w.Handle(t.Context(), &queue.Delivery{ID: "t9", Type: task.KindVMCreate, Attempt: 1, MaxAttempts: 4}); !queue.IsPermanent(err) {
		t.Errorf("Handle = %v, want permanent (not found)", err)
	}
	for _, want := range []string{`msg="settle the rows of a failed task"`, `msg="mark task failed"`} {
		if !strings.Contains(logs.String(), want) || !strings.Contains(logs.String(), "task_id=t9") || !strings.Contains(logs.String(), `err="disk full"`) {
			t.Errorf("log lacks %s with task_id=t9 and the error:\n%s", want, logs)
		}
	}
}

// TestHandlers checks that the worker has one handler for every kind of
// the task contract, and a settling step exactly for the kinds that create
// rows a failure must settle (and vm:delete, whose sandbox must not stay
// deleting).
func TestHandlers(t *testing.T) {
	t.Parallel()
	w, _ := newTestWorker(t, &fakeStore{}, nil)
	withFail := map[string]bool{task.KindVMCreate: true, task.KindJobRun: true, task.KindTemplateBuild: true, task.KindVMSnapshot: true,
		task.KindVMDelete: true}
	for _, k := range task.Kinds() {
		h, ok := w.kinds[k]
		if !ok {
			t.Errorf("no handler for %s", k)
			continue
		}
		if (h.fail != nil) != withFail[k] {
			t.Errorf("%s has a failure step: %v, want %v", k, h.fail != nil, withFail[k])
		}
	}
	if len(w.kinds) != len(task.Kinds()) {
		t.Errorf("%d handlers for %d kinds", len(w.kinds), len(task.Kinds()))
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a kind twice did not panic")
		}
	}()
	register(w.kinds, w.vmDelete, nil)
}

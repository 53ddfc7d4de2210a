package task

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/store"
)

// fakeStore is a Store whose methods call the Impl fields.
type fakeStore struct {
	TaskInsertImpl func(ctx context.Context, p *store.TaskInsertParams) (*store.Task, error)
	TaskUpdateImpl func(ctx context.Context, p *store.TaskUpdateParams) (*store.Task, error)
}

func (f *fakeStore) TaskInsert(ctx context.Context, p *store.TaskInsertParams) (*store.Task, error) {
	return f.TaskInsertImpl(ctx, p)
}

func (f *fakeStore) TaskUpdate(ctx context.Context, p *store.TaskUpdateParams) (*store.Task, error) {
	return f.TaskUpdateImpl(ctx, p)
}

// fakeQueue is an Enqueuer whose Enqueue calls EnqueueImpl.
type fakeQueue struct {
	EnqueueImpl func(ctx context.Context, msg *queue.Message) error
}

func (f *fakeQueue) Enqueue(ctx context.Context, msg *queue.Message) error {
	return f.EnqueueImpl(ctx, msg)
}

// recorder is a store that keeps the inserted rows as the real one would
// (ID, pending status, timeout in ms) and a queue that keeps the messages.
type recorder struct {
	inserted []*store.TaskInsertParams
	updated  []*store.TaskUpdateParams
	sent     []*queue.Message
}

func (r *recorder) store() *fakeStore {
	return &fakeStore{
		TaskInsertImpl: func(_ context.Context, p *store.TaskInsertParams) (*store.Task, error) {
			r.inserted = append(r.inserted, p)
			vmID := p.VMID
			if p.VM != nil {
				vmID = p.VM.ID
			}
			return &store.Task{ID: "t1", ProjectID: p.ProjectID, Type: p.Type, Status: store.TaskPending, Priority: p.Priority,
				VMID: vmID, Payload: p.Payload, MaxRetries: p.MaxRetries, TimeoutMS: p.Timeout.Milliseconds()}, nil
		},
		TaskUpdateImpl: func(_ context.Context, p *store.TaskUpdateParams) (*store.Task, error) {
			r.updated = append(r.updated, p)
			return &store.Task{ID: p.ID, Status: p.Status, Result: p.Result}, nil
		},
	}
}

func (r *recorder) queue(err error) *fakeQueue {
	return &fakeQueue{EnqueueImpl: func(_ context.Context, m *queue.Message) error {
		r.sent = append(r.sent, m)
		return err
	}}
}

// TestSubmit checks that each kind's row and message carry its policy, its
// payload and its route, and that both name the same task.
func TestSubmit(t *testing.T) {
	t.Parallel()
	vm := &store.VMInsertParams{ID: "vm1", Name: "a"}
	tests := []struct {
		name        string
		args        Args
		params      SubmitParams
		wantPayload string
		wantMsg     queue.Message
	}{
		{name: "create", args: VMCreateArgs{KeepOnFailure: true}, params: SubmitParams{Route: "w1", VM: vm},
			wantPayload: `{"keep_on_failure":true}`,
			wantMsg:     queue.Message{Type: KindVMCreate, Priority: queue.PriorityHigh, MaxRetries: 3, Timeout: 5 * time.Minute, Worker: "w1"}},
		{name: "pool create is low priority", args: VMCreateArgs{Pool: true}, params: SubmitParams{Route: "w1", VM: vm},
			wantPayload: `{"pool":true}`,
			wantMsg:     queue.Message{Type: KindVMCreate, Priority: queue.PriorityLow, MaxRetries: 3, Timeout: 5 * time.Minute, Worker: "w1"}},
		{name: "timeout overrides the policy", args: VMCreateArgs{}, params: SubmitParams{Timeout: time.Hour, VM: vm},
			wantPayload: `{}`,
			wantMsg:     queue.Message{Type: KindVMCreate, Priority: queue.PriorityHigh, MaxRetries: 3, Timeout: time.Hour}},
		{name: "delete", args: VMDeleteArgs{}, params: SubmitParams{VMID: "vm1"},
			wantPayload: `{}`,
			wantMsg:     queue.Message{Type: KindVMDelete, Priority: queue.PriorityCritical, MaxRetries: 5, Timeout: 2 * time.Minute}},
		{name: "execute with its own timeout", args: VMExecuteArgs{ExecParams{Command: "ls", TimeoutSeconds: 60}},
			params:      SubmitParams{Route: "w2", VMID: "vm1"},
			wantPayload: `{"command":"ls","timeout_seconds":60}`,
			wantMsg:     queue.Message{Type: KindVMExecute, Priority: queue.PriorityDefault, Timeout: 3 * time.Minute, Worker: "w2"}},
		{name: "execute without a timeout", args: VMExecuteArgs{ExecParams{Command: "ls"}}, params: SubmitParams{VMID: "vm1"},
			wantPayload: `{"command":"ls"}`,
			wantMsg:     queue.Message{Type: KindVMExecute, Priority: queue.PriorityDefault, Timeout: 30 * time.Minute}},
		{name: "job", args: JobRunArgs{JobID: "j1"}, params: SubmitParams{VMID: "vm1", Job: &store.JobInsertParams{ID: "j1"}},
			wantPayload: `{"job_id":"j1"}`,
			wantMsg:     queue.Message{Type: KindJobRun, Priority: queue.PriorityDefault, Timeout: 2 * time.Hour}},
		{name: "image build keeps every field", args: ImageBuildArgs{Suite: "trixie"},
			wantPayload: `{"ref":"","suite":"trixie","include":null,"mirror":"","force":false}`,
			wantMsg:     queue.Message{Type: KindImageBuild, Priority: queue.PriorityLow, MaxRetries: 1, Timeout: 30 * time.Minute}},
		{name: "expiry pause says why", args: VMPauseArgs{Reason: "expired: idle"}, params: SubmitParams{Route: "w1", VMID: "vm1"},
			wantPayload: `{"reason":"expired: idle"}`,
			wantMsg:     queue.Message{Type: KindVMPause, Priority: queue.PriorityHigh, MaxRetries: 3, Timeout: time.Minute, Worker: "w1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var r recorder
			p := tt.params
			p.ProjectID = "default"
			got, err := Submit(t.Context(), r.store(), r.queue(nil), tt.args, &p)
			if err != nil || got == nil {
				t.Fatalf("Submit(%#v) = %v, %v", tt.args, got, err)
			}
			if len(r.inserted) != 1 || len(r.sent) != 1 {
				t.Fatalf("Submit(%#v) inserted %d rows and sent %d messages, want 1 and 1", tt.args, len(r.inserted), len(r.sent))
			}
			row := r.inserted[0]
			if string(row.Payload) != tt.wantPayload || row.ProjectID != "default" || row.VM != p.VM || row.Job != p.Job || row.VMID != p.VMID {
				t.Errorf("row = %+v (payload %s), want payload %s and the params' rows", row, row.Payload, tt.wantPayload)
			}
			want := tt.wantMsg
			want.ID = got.ID
			if *r.sent[0] != want {
				t.Errorf("message = %+v, want %+v", *r.sent[0], want)
			}
		})
	}
}

// TestSubmitFailures checks what exists after each way Submit can fail.
func TestSubmitFailures(t *testing.T) {
	t.Parallel()
	down := errdefs.Unavailable("queue down")
	t.Run("enqueue failure leaves the row for the reconciler", func(t *testing.T) {
		t.Parallel()
		var r recorder
		got, err := Submit(t.Context(), r.store(), r.queue(down), VMDeleteArgs{}, &SubmitParams{ProjectID: "default", VMID: "vm1"})
		if got == nil || got.Status != store.TaskPending || !errors.Is(err, ErrNotEnqueued) || !errors.Is(err, down) {
			t.Errorf("Submit = %+v, %v; want the pending task and ErrNotEnqueued wrapping %v", got, err, down)
		}
		if len(r.inserted) != 1 {
			t.Errorf("inserted %d rows, want 1", len(r.inserted))
		}
	})
	t.Run("insert failure sends nothing", func(t *testing.T) {
		t.Parallel()
		var r recorder
		st := r.store()
		st.TaskInsertImpl = func(context.Context, *store.TaskInsertParams) (*store.Task, error) {
			return nil, errdefs.AlreadyExists("sandbox name taken")
		}
		got, err := Submit(t.Context(), st, r.queue(nil), VMCreateArgs{}, &SubmitParams{ProjectID: "default"})
		if got != nil || !errors.Is(err, errdefs.ErrAlreadyExists) || errors.Is(err, ErrNotEnqueued) || len(r.sent) != 0 {
			t.Errorf("Submit = %v, %v, %d messages; want nil, the store's error, none", got, err, len(r.sent))
		}
	})
	t.Run("no project creates nothing", func(t *testing.T) {
		t.Parallel()
		var r recorder
		_, err := Submit(t.Context(), r.store(), r.queue(nil), VMResumeArgs{}, &SubmitParams{VMID: "vm1"})
		if !errors.Is(err, errdefs.ErrInvalidArgument) || len(r.inserted)+len(r.sent) != 0 {
			t.Errorf("Submit without project = %v, %d rows, %d messages; want invalid argument, nothing", err, len(r.inserted), len(r.sent))
		}
	})
}

// TestSubmitDone checks the record of work already done (a create answered
// from the warm pool): succeeded with its result, never enqueued, and its
// payload is the typed args (once an untyped {"from_pool":true}).
func TestSubmitDone(t *testing.T) {
	t.Parallel()
	var r recorder
	res := &VMResult{VMID: "vm1", Status: store.VMRunning}
	got, err := Submit(t.Context(), r.store(), r.queue(nil), VMCreateArgs{FromPool: true}, &SubmitParams{ProjectID: "default", VMID: "vm1", Result: res})
	if err != nil || got.Status != store.TaskSucceeded {
		t.Fatalf("Submit = %+v, %v; want a succeeded task", got, err)
	}
	if len(r.sent) != 0 {
		t.Errorf("sent %d messages for work already done, want 0", len(r.sent))
	}
	if p := string(r.inserted[0].Payload); p != `{"from_pool":true}` {
		t.Errorf("payload = %s, want {\"from_pool\":true}", p)
	}
	var back VMResult
	if len(r.updated) != 1 || json.Unmarshal(r.updated[0].Result, &back) != nil || back != *res {
		t.Errorf("updates = %+v, want one with result %+v", r.updated, res)
	}
	a, err := Decode[VMCreateArgs](&store.Task{Type: KindVMCreate, Payload: r.inserted[0].Payload})
	if err != nil || !a.FromPool {
		t.Errorf("Decode(payload) = %+v, %v; want FromPool", a, err)
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		task    store.Task
		want    TemplateBuildArgs
		wantErr bool
	}{
		{name: "payload", task: store.Task{Type: KindTemplateBuild, Payload: json.RawMessage(`{"template_id":"x"}`)}, want: TemplateBuildArgs{TemplateID: "x"}},
		{name: "unknown fields are ignored", task: store.Task{Type: KindTemplateBuild, Payload: json.RawMessage(`{"template_id":"x","later":1}`)}, want: TemplateBuildArgs{TemplateID: "x"}},
		{name: "not JSON", task: store.Task{Type: KindTemplateBuild, Payload: json.RawMessage(`{"template_id":`)}, wantErr: true},
		{name: "wrong type", task: store.Task{Type: KindTemplateBuild, Payload: json.RawMessage(`{"template_id":7}`)}, wantErr: true},
		{name: "another kind", task: store.Task{Type: KindVMSnapshot, Payload: json.RawMessage(`{"template_id":"x"}`)}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Decode[TemplateBuildArgs](&tt.task)
			if tt.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Errorf("Decode(%s %s) error = %v, want invalid argument", tt.task.Type, tt.task.Payload, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Decode(%s %s) = %+v, %v; want %+v", tt.task.Type, tt.task.Payload, got, err, tt.want)
			}
		})
	}
}

// TestEveryKindHasArgs keeps the kinds, their policies and their args types
// in step.
func TestEveryKindHasArgs(t *testing.T) {
	t.Parallel()
	all := []Args{VMCreateArgs{}, VMDeleteArgs{}, VMExecuteArgs{}, JobRunArgs{}, ImageBuildArgs{}, TemplateBuildArgs{},
		TemplateDeleteArgs{}, VMPauseArgs{}, VMResumeArgs{}, VMSnapshotArgs{}, IntegrationReportArgs{}, IntegrationArtifactArgs{}}
	var kinds []string
	for _, a := range all {
		kinds = append(kinds, a.Kind())
		if a.Policy() != DefaultPolicy(a.Kind()) || a.Policy().Priority == "" || a.Policy().Timeout <= 0 {
			t.Errorf("%T.Policy() = %+v, want the kind's default %+v with a priority and a timeout", a, a.Policy(), DefaultPolicy(a.Kind()))
		}
	}
	slices.Sort(kinds)
	if !reflect.DeepEqual(kinds, Kinds()) {
		t.Errorf("args kinds %v, want Kinds() %v", kinds, Kinds())
	}
	// The rescuer horizon covers the longest execute (issue 10: it was 2 h).
	if want := MaxExecTimeout + 2*time.Minute; MaxTimeout() != want {
		t.Errorf("MaxTimeout() = %s, want the longest execute's %s", MaxTimeout(), want)
	}
	if got := (VMExecuteArgs{ExecParams: ExecParams{TimeoutSeconds: int(MaxExecTimeout.Seconds())}}).Policy().Timeout; got > MaxTimeout() {
		t.Errorf("the longest execute's attempt timeout %s exceeds MaxTimeout() %s", got, MaxTimeout())
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	if got := Timeout(&store.Task{Type: KindVMDelete}); got != 2*time.Minute {
		t.Errorf("Timeout(vm:delete without its own) = %s, want 2m", got)
	}
	if got := Timeout(&store.Task{Type: KindVMDelete, TimeoutMS: 1500}); got != 1500*time.Millisecond {
		t.Errorf("Timeout(vm:delete with 1500ms) = %s, want 1.5s", got)
	}
}

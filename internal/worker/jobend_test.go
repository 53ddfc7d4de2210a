package worker

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// TestJobEndReportsAndDeletes: a job an integration started that ends
// (here: its sandbox never came, so the task fails for good) settles the
// job, then queues a finished report per report target and deletes its
// sandbox, before the task row is marked failed; a user's job (no reports,
// no delete_vm) queues nothing.
func TestJobEndReportsAndDeletes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		payload string
		want    []string
	}{
		{"integration job", `{"job_id":"j1","reports":[{"integration":"github","target":{"sha":"x"}},{"integration":"slack","target":{"channel":"#c"}}],"delete_vm":true}`,
			[]string{"TaskUpdate running", "JobUpdate j1 failed", "TaskInsert integration:report", "TaskInsert integration:report",
				"VMUpdate vm1 deleting", "TaskInsert vm:delete", "TaskUpdate failed"}},
		{"user job", `{"job_id":"j1"}`, []string{"TaskUpdate running", "JobUpdate j1 failed", "TaskUpdate failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			down := errdefs.Unavailable("store down")
			row := &store.Task{ID: "t1", ProjectID: "default", Type: task.KindJobRun, Status: store.TaskPending, VMID: "vm1", Payload: json.RawMessage(tt.payload)}
			var sent []*queue.Message
			st := &fakeStore{
				TaskGetImpl:    func(context.Context, *store.TaskGetParams) (*store.Task, error) { return row, nil },
				TaskUpdateImpl: func(context.Context, *store.TaskUpdateParams) (*store.Task, error) { return row, nil },
				TaskInsertImpl: func(_ context.Context, p *store.TaskInsertParams) (*store.Task, error) {
					return &store.Task{ID: "new-" + p.Type, Type: p.Type, ProjectID: p.ProjectID, VMID: p.VMID, Payload: p.Payload}, nil
				},
				JobGetImpl: func(context.Context, *store.JobGetParams) (*store.Job, error) { return nil, down },
				JobUpdateImpl: func(_ context.Context, p *store.JobUpdateParams) (*store.Job, error) {
					return &store.Job{ID: p.ID, ProjectID: "default", VMID: "vm1", Status: p.Status}, nil
				},
				VMUpdateImpl: func(_ context.Context, p *store.VMUpdateParams) (*store.VM, error) {
					return &store.VM{ID: p.ID, WorkerID: "w1"}, nil
				},
			}
			q := &fakeQueue{EnqueueImpl: func(_ context.Context, m *queue.Message) error { sent = append(sent, m); return nil }}
			w, _ := newTestWorker(t, st, q)
			err := w.Handle(t.Context(), &queue.Delivery{ID: "t1", Type: task.KindJobRun, Attempt: 1, MaxAttempts: 1})
			if !queue.IsPermanent(err) {
				t.Fatalf("Handle = %v, want a permanent error", err)
			}
			if got := st.written(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("writes = %q, want %q", got, tt.want)
			}
			for _, m := range sent {
				if m.Type == task.KindVMDelete && m.Worker != "w1" {
					t.Errorf("vm:delete routed to %q, want the sandbox's owner w1", m.Worker)
				}
			}
		})
	}
}

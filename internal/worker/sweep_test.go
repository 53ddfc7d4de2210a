package worker

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// taskRecorder fakes TaskInsert like the real store (the row as inserted)
// and keeps the queue's messages.
type taskRecorder struct {
	rows []*store.TaskInsertParams
	sent []*queue.Message
}

func (r *taskRecorder) insert(_ context.Context, p *store.TaskInsertParams) (*store.Task, error) {
	r.rows = append(r.rows, p)
	vmID := p.VMID
	if p.VM != nil {
		vmID = p.VM.ID
	}
	return &store.Task{ID: "t" + vmID, ProjectID: p.ProjectID, Type: p.Type, Status: store.TaskPending, Priority: p.Priority,
		VMID: vmID, Payload: p.Payload, MaxRetries: p.MaxRetries, TimeoutMS: p.Timeout.Milliseconds()}, nil
}

func (r *taskRecorder) queue(err error) *fakeQueue {
	return &fakeQueue{EnqueueImpl: func(_ context.Context, m *queue.Message) error {
		r.sent = append(r.sent, m)
		return err
	}}
}

// TestExpire checks that an expired sandbox changes status first and then
// gets its task through task.Submit, typed and routed to its owner; that a
// failed status write submits nothing (the next sweep retries); and that an
// unsent message is logged.
func TestExpire(t *testing.T) {
	t.Parallel()
	past := time.Now().Add(-time.Second)
	tests := []struct {
		name        string
		onExpire    string
		statusErr   error
		enqueueErr  error
		wantWrites  []string
		wantPayload string
		wantMsg     queue.Message
		wantLog     []string // substrings of the log
	}{
		{name: "delete", onExpire: store.ExpireDelete,
			wantWrites:  []string{"VMUpdate vm1 deleting", "TaskInsert vm:delete"},
			wantPayload: `{"reason":"expired: its timeout passed"}`,
			wantMsg:     queue.Message{ID: "tvm1", Type: task.KindVMDelete, Priority: queue.PriorityCritical, MaxRetries: 5, Timeout: 2 * time.Minute, Worker: "w1"}},
		{name: "pause", onExpire: store.ExpirePause,
			wantWrites:  []string{"VMUpdate vm1 paused", "TaskInsert vm:pause"},
			wantPayload: `{"reason":"expired: its timeout passed"}`,
			wantMsg:     queue.Message{ID: "tvm1", Type: task.KindVMPause, Priority: queue.PriorityHigh, MaxRetries: 3, Timeout: time.Minute, Worker: "w1"}},
		{name: "status not written: nothing submitted", onExpire: store.ExpireDelete, statusErr: errors.New("locked"),
			wantWrites: []string{"VMUpdate vm1 deleting"}, wantLog: []string{`msg="expire: mark sandbox deleting"`, "sandbox_id=vm1", "err=locked"}},
		{name: "message not sent: logged", onExpire: store.ExpireDelete, enqueueErr: errors.New("redis down"),
			wantWrites:  []string{"VMUpdate vm1 deleting", "TaskInsert vm:delete"},
			wantPayload: `{"reason":"expired: its timeout passed"}`,
			wantMsg:     queue.Message{ID: "tvm1", Type: task.KindVMDelete, Priority: queue.PriorityCritical, MaxRetries: 5, Timeout: 2 * time.Minute, Worker: "w1"},
			wantLog:     []string{`msg="submit task"`, "type=vm:delete sandbox_id=vm1 task_id=tvm1", "redis down"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var rec taskRecorder
			st := &fakeStore{
				VMListImpl: func(_ context.Context, p *store.VMListParams) ([]*store.VM, error) {
					if p.WorkerID != "w1" {
						t.Errorf("expire listed worker %q's sandboxes, want only its own", p.WorkerID)
					}
					return []*store.VM{
						{ID: "vm1", ProjectID: "default", Status: store.VMRunning, ExpiresAt: &past, OnExpire: tt.onExpire},
						{ID: "vm2", ProjectID: "default", Status: store.VMRunning}, // no lifetime
						{ID: "vm3", ProjectID: "default", Status: store.VMPaused, ExpiresAt: &past},
					}, nil
				},
				VMUpdateImpl: func(_ context.Context, p *store.VMUpdateParams) (*store.VM, error) {
					return &store.VM{ID: p.ID}, tt.statusErr
				},
				TaskInsertImpl: rec.insert,
			}
			w, logs := newTestWorker(t, st, rec.queue(tt.enqueueErr))
			w.expire(t.Context())
			if got := st.written(); !reflect.DeepEqual(got, tt.wantWrites) {
				t.Errorf("writes = %q, want %q", got, tt.wantWrites)
			}
			if tt.wantPayload != "" && (len(rec.rows) != 1 || string(rec.rows[0].Payload) != tt.wantPayload || len(rec.sent) != 1 || *rec.sent[0] != tt.wantMsg) {
				t.Errorf("rows %+v, messages %+v; want payload %s and message %+v", rec.rows, rec.sent, tt.wantPayload, tt.wantMsg)
			}
			for _, want := range tt.wantLog {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("log lacks %s:\n%s", want, logs)
				}
			}
		})
	}
}

// TestStartPoolSandbox checks that a pool sandbox's create is typed args
// (once an untyped payload), low priority, on this worker, with the pool's
// resources, and that an unsent message is not an error (the reconciler
// sends it).
func TestStartPoolSandbox(t *testing.T) {
	t.Parallel()
	for _, enqueueErr := range []error{nil, errors.New("queue down")} {
		var rec taskRecorder
		st := &fakeStore{TaskInsertImpl: rec.insert}
		w, _ := newTestWorker(t, st, rec.queue(enqueueErr))
		err := w.startPoolSandbox(t.Context(), &store.Template{ID: "tp1", ProjectID: "default", Image: "img:1"})
		if err != nil || len(rec.rows) != 1 || len(rec.sent) != 1 {
			t.Fatalf("startPoolSandbox (enqueue error %v) = %v, %d rows, %d messages; want nil, 1, 1", enqueueErr, err, len(rec.rows), len(rec.sent))
		}
		row, msg := rec.rows[0], rec.sent[0]
		vm := row.VM
		if row.Type != task.KindVMCreate || string(row.Payload) != `{"pool":true}` || row.Priority != queue.PriorityLow ||
			vm == nil || vm.Template != "tp1" || vm.Image != "img:1" || vm.WorkerID != "w1" || vm.VCPUs != task.PoolVCPUs ||
			vm.MemoryMB != task.PoolMemoryMB || !strings.HasPrefix(vm.Name, store.PoolNamePrefix) {
			t.Errorf("row = %+v (payload %s, vm %+v), want a low-priority pool vm:create of tp1 on w1", row, row.Payload, vm)
		}
		if msg.Worker != "w1" || msg.Priority != queue.PriorityLow || msg.ID != "t"+vm.ID {
			t.Errorf("message = %+v, want the task's, low priority, to w1", msg)
		}
	}
}

// TestSweepDeadWorkers checks the dead-worker sweep against cluster.Alive:
// only workers past DeadAfter lose their sandboxes, and the tasks that ran
// on them or act on their sandboxes fail, except pending deletes (any live
// worker records those).
func TestSweepDeadWorkers(t *testing.T) {
	t.Parallel()
	now := time.Now()
	var listed []string
	st := &fakeStore{
		WorkerListImpl: func(context.Context) ([]*store.Worker, error) {
			return []*store.Worker{
				{ID: "w1", HeartbeatAt: now.Add(-time.Hour)},        // this worker: never dead to itself
				{ID: "w2", HeartbeatAt: now.Add(-20 * time.Second)}, // alive
				{ID: "w3", HeartbeatAt: now.Add(-40 * time.Second)}, // dead
			}, nil
		},
		VMListImpl: func(_ context.Context, p *store.VMListParams) ([]*store.VM, error) {
			listed = append(listed, p.WorkerID)
			if p.Pooled {
				return []*store.VM{{ID: "pool3", Status: store.VMPooled}}, nil
			}
			return []*store.VM{{ID: "vm3", Status: store.VMRunning}, {ID: "gone3", Status: store.VMDeleted}}, nil
		},
		VMUpdateImpl: okVM,
		TaskListImpl: func(_ context.Context, p *store.TaskListParams) ([]*store.Task, error) {
			if p.Status == store.TaskRunning {
				return []*store.Task{
					{ID: "ran-on-w3", Type: task.KindVMExecute, Status: store.TaskRunning, WorkerID: "w3", VMID: "other"},
					{ID: "ran-on-w2", Type: task.KindVMExecute, Status: store.TaskRunning, WorkerID: "w2", VMID: "vm2"},
				}, nil
			}
			return []*store.Task{
				{ID: "exec-vm3", Type: task.KindVMExecute, Status: store.TaskPending, VMID: "vm3"},
				{ID: "delete-vm3", Type: task.KindVMDelete, Status: store.TaskPending, VMID: "vm3"},
			}, nil
		},
		TaskUpdateImpl: okTask,
	}
	var failed []string
	inner := st.TaskUpdateImpl
	st.TaskUpdateImpl = func(ctx context.Context, p *store.TaskUpdateParams) (*store.Task, error) {
		failed = append(failed, p.ID)
		return inner(ctx, p)
	}
	w, _ := newTestWorker(t, st, nil)
	w.cfg.DeadAfter = 30 * time.Second
	w.sweepDeadWorkers(t.Context())
	if !reflect.DeepEqual(listed, []string{"w3", "w3"}) {
		t.Errorf("listed the sandboxes of %v, want only dead w3's", listed)
	}
	wantWrites := []string{"VMUpdate pool3 deleted", "VMUpdate vm3 lost", "TaskUpdate failed", "TaskUpdate failed"}
	if got := st.written(); !reflect.DeepEqual(got, wantWrites) {
		t.Errorf("writes = %q, want %q", got, wantWrites)
	}
	if !reflect.DeepEqual(failed, []string{"exec-vm3", "ran-on-w3"}) {
		t.Errorf("failed tasks %v, want exec-vm3 and ran-on-w3", failed)
	}
}

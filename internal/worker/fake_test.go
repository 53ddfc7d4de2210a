package worker

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/store"
)

// fakeStore is a store.Store whose used methods call the Impl fields; the
// embedded nil Store makes any other call panic, which fails the test. Every
// write is also recorded in order in writes, as "TaskUpdate running",
// "VMUpdate failed", "JobUpdate failed" and so on.
type fakeStore struct {
	store.Store

	TaskGetImpl        func(ctx context.Context, p *store.TaskGetParams) (*store.Task, error)
	TaskUpdateImpl     func(ctx context.Context, p *store.TaskUpdateParams) (*store.Task, error)
	TaskInsertImpl     func(ctx context.Context, p *store.TaskInsertParams) (*store.Task, error)
	TaskListImpl       func(ctx context.Context, p *store.TaskListParams) ([]*store.Task, error)
	VMGetImpl          func(ctx context.Context, p *store.VMGetParams) (*store.VM, error)
	VMUpdateImpl       func(ctx context.Context, p *store.VMUpdateParams) (*store.VM, error)
	VMListImpl         func(ctx context.Context, p *store.VMListParams) ([]*store.VM, error)
	JobGetImpl         func(ctx context.Context, p *store.JobGetParams) (*store.Job, error)
	JobUpdateImpl      func(ctx context.Context, p *store.JobUpdateParams) (*store.Job, error)
	TemplateGetImpl    func(ctx context.Context, p *store.TemplateGetParams) (*store.Template, error)
	TemplateUpdateImpl func(ctx context.Context, p *store.TemplateUpdateParams) (*store.Template, error)
	WorkerListImpl     func(ctx context.Context) ([]*store.Worker, error)
	WorkerLoadImpl     func(ctx context.Context) (map[string]store.Load, error)
	TemplateListImpl   func(ctx context.Context, projectID string) ([]*store.Template, error)
	HistoryPruneImpl   func(ctx context.Context, before time.Time, limit int) (int64, error)

	mu     sync.Mutex
	writes []string
}

func (f *fakeStore) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes = append(f.writes, fmt.Sprintf(format, args...))
}

func (f *fakeStore) written() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.writes...)
}

func (f *fakeStore) HistoryPrune(ctx context.Context, before time.Time, limit int) (int64, error) {
	f.record("HistoryPrune %d", limit)
	return f.HistoryPruneImpl(ctx, before, limit)
}

func (f *fakeStore) TaskGet(ctx context.Context, p *store.TaskGetParams) (*store.Task, error) {
	return f.TaskGetImpl(ctx, p)
}

func (f *fakeStore) TaskUpdate(ctx context.Context, p *store.TaskUpdateParams) (*store.Task, error) {
	f.record("TaskUpdate %s", p.Status)
	return f.TaskUpdateImpl(ctx, p)
}

func (f *fakeStore) TaskInsert(ctx context.Context, p *store.TaskInsertParams) (*store.Task, error) {
	f.record("TaskInsert %s", p.Type)
	return f.TaskInsertImpl(ctx, p)
}

func (f *fakeStore) TaskList(ctx context.Context, p *store.TaskListParams) ([]*store.Task, error) {
	return f.TaskListImpl(ctx, p)
}

func (f *fakeStore) VMGet(ctx context.Context, p *store.VMGetParams) (*store.VM, error) {
	return f.VMGetImpl(ctx, p)
}

func (f *fakeStore) VMUpdate(ctx context.Context, p *store.VMUpdateParams) (*store.VM, error) {
	status := "-"
	if p.Status != nil {
		status = *p.Status
	}
	f.record("VMUpdate %s %s", p.ID, status)
	return f.VMUpdateImpl(ctx, p)
}

func (f *fakeStore) VMList(ctx context.Context, p *store.VMListParams) ([]*store.VM, error) {
	return f.VMListImpl(ctx, p)
}

func (f *fakeStore) JobGet(ctx context.Context, p *store.JobGetParams) (*store.Job, error) {
	return f.JobGetImpl(ctx, p)
}

func (f *fakeStore) JobUpdate(ctx context.Context, p *store.JobUpdateParams) (*store.Job, error) {
	f.record("JobUpdate %s %s", p.ID, p.Status)
	return f.JobUpdateImpl(ctx, p)
}

func (f *fakeStore) TemplateGet(ctx context.Context, p *store.TemplateGetParams) (*store.Template, error) {
	return f.TemplateGetImpl(ctx, p)
}

func (f *fakeStore) TemplateUpdate(ctx context.Context, p *store.TemplateUpdateParams) (*store.Template, error) {
	f.record("TemplateUpdate %s %s", p.ID, p.Status)
	return f.TemplateUpdateImpl(ctx, p)
}

func (f *fakeStore) WorkerList(ctx context.Context) ([]*store.Worker, error) {
	return f.WorkerListImpl(ctx)
}

func (f *fakeStore) WorkerLoad(ctx context.Context) (map[string]store.Load, error) {
	return f.WorkerLoadImpl(ctx)
}

func (f *fakeStore) TemplateList(ctx context.Context, projectID string) ([]*store.Template, error) {
	return f.TemplateListImpl(ctx, projectID)
}

// fakeQueue is a queue.Queue whose Enqueue calls EnqueueImpl.
type fakeQueue struct {
	queue.Queue
	EnqueueImpl func(ctx context.Context, msg *queue.Message) error
}

func (f *fakeQueue) Enqueue(ctx context.Context, msg *queue.Message) error {
	return f.EnqueueImpl(ctx, msg)
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newTestWorker returns worker "w1" over st and q with the real handlers,
// logging into the returned buffer.
func newTestWorker(t *testing.T, st store.Store, q queue.Queue) (*Worker, *syncBuffer) {
	t.Helper()
	var logs syncBuffer
	w, err := New(Config{ID: "w1", RuntimeName: "docker", Logger: slog.New(slog.NewTextHandler(&logs, nil))}, st, q, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return w, &logs
}

// okVM, okTask, okJob and okTemplate are the Impl of writes that succeed.
func okVM(_ context.Context, p *store.VMUpdateParams) (*store.VM, error) {
	return &store.VM{ID: p.ID}, nil
}

func okTask(_ context.Context, p *store.TaskUpdateParams) (*store.Task, error) {
	return &store.Task{ID: p.ID, Status: p.Status}, nil
}

func okJob(_ context.Context, p *store.JobUpdateParams) (*store.Job, error) {
	return &store.Job{ID: p.ID, Status: p.Status}, nil
}

func okTemplate(_ context.Context, p *store.TemplateUpdateParams) (*store.Template, error) {
	return &store.Template{ID: p.ID, Status: p.Status}, nil
}

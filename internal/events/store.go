package events

import (
	"context"
	"log/slog"
	"time"

	"github.com/aetherium/aetherium/internal/store"
)

// Store wraps a store.Store and publishes an event after every committed
// task insert or update and sandbox update. A failed publish is logged, never
// returned: the write happened, and the store is the source of truth.
type Store struct {
	store.Store
	bus Bus
	log *slog.Logger
}

// NewStore returns st publishing to bus.
func NewStore(st store.Store, bus Bus, log *slog.Logger) *Store {
	return &Store{Store: st, bus: bus, log: log.With("component", "events")}
}

func (s *Store) publish(ctx context.Context, e *Event) {
	e.Time = time.Now().UTC()
	if err := s.bus.Publish(context.WithoutCancel(ctx), e); err != nil {
		s.log.WarnContext(ctx, "publish event", slog.String("kind", e.Kind), slog.Any("err", err))
	}
}

func taskEvent(t *store.Task) *Event {
	return &Event{Kind: KindTask, Status: t.Status, TaskType: t.Type, TaskID: t.ID, VMID: t.VMID,
		ProjectID: t.ProjectID, Error: t.Error, Progress: t.Progress}
}

// TaskInsert implements store.Store.
func (s *Store) TaskInsert(ctx context.Context, p *store.TaskInsertParams) (*store.Task, error) {
	t, err := s.Store.TaskInsert(ctx, p)
	if err == nil {
		s.publish(ctx, taskEvent(t))
		if p.VM != nil {
			s.publish(ctx, &Event{Kind: KindVM, Status: store.VMCreating, VMID: p.VM.ID, ProjectID: t.ProjectID})
		}
	}
	return t, err
}

// TaskUpdate implements store.Store.
func (s *Store) TaskUpdate(ctx context.Context, p *store.TaskUpdateParams) (*store.Task, error) {
	t, err := s.Store.TaskUpdate(ctx, p)
	if err == nil {
		s.publish(ctx, taskEvent(t))
	}
	return t, err
}

// VMUpdate implements store.Store.
func (s *Store) VMUpdate(ctx context.Context, p *store.VMUpdateParams) (*store.VM, error) {
	vm, err := s.Store.VMUpdate(ctx, p)
	if err == nil && p.Status != nil {
		s.publish(ctx, &Event{Kind: KindVM, Status: vm.Status, VMID: vm.ID, ProjectID: vm.ProjectID, Error: vm.Error})
	}
	return vm, err
}

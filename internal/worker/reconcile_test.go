package worker

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/store"
)

// fakeRuntime is a sandbox.Runtime whose List returns machines and whose
// Delete records the IDs it was asked to remove; any other call panics.
type fakeRuntime struct {
	sandbox.Runtime
	machines []*sandbox.Info
	mu       sync.Mutex
	deleted  []string
}

func (f *fakeRuntime) List(context.Context) ([]*sandbox.Info, error) { return f.machines, nil }

func (f *fakeRuntime) Delete(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = append(f.deleted, id)
	return nil
}

// TestReconcileMachinesReadsRowsOnce guards issue 13's per-sandbox cost: a
// reconcile read this worker's rows once per machine (500 lookups every
// 30 s with 500 sandboxes). It now lists them and looks up only machines
// without a row of its own (an orphan here), with the same outcomes: a lost
// sandbox whose machine runs is adopted, a running one without a machine
// fails, an orphan machine is removed.
func TestReconcileMachinesReadsRowsOnce(t *testing.T) {
	t.Parallel()
	rows := []*store.VM{
		{ID: "vm1", Status: store.VMRunning, WorkerID: "w1"},
		{ID: "vm2", Status: store.VMLost, WorkerID: "w1"},
		{ID: "vm3", Status: store.VMRunning, WorkerID: "w1"},
	}
	var mu sync.Mutex
	var looked []string
	st := &fakeStore{
		VMListImpl: func(_ context.Context, p *store.VMListParams) ([]*store.VM, error) {
			if p.Pooled {
				return nil, nil
			}
			return rows, nil
		},
		VMGetImpl: func(_ context.Context, p *store.VMGetParams) (*store.VM, error) {
			mu.Lock()
			defer mu.Unlock()
			looked = append(looked, p.IDOrName)
			return nil, errdefs.NotFound("sandbox %s not found", p.IDOrName)
		},
		VMUpdateImpl: okVM,
	}
	w, _ := newTestWorker(t, st, nil)
	rt := &fakeRuntime{machines: []*sandbox.Info{
		{ID: "vm1", State: sandbox.StateRunning}, {ID: "vm2", State: sandbox.StateRunning}, {ID: "orphan", State: sandbox.StateRunning}}}
	w.rt = rt
	w.reconcileMachines(context.Background())
	if !slices.Equal(looked, []string{"orphan"}) {
		t.Errorf("looked up %v one by one, want only [orphan]", looked)
	}
	if got, want := st.written(), []string{"VMUpdate vm2 running", "VMUpdate vm3 failed"}; !slices.Equal(got, want) {
		t.Errorf("writes = %v, want %v", got, want)
	}
	if !slices.Equal(rt.deleted, []string{"orphan"}) {
		t.Errorf("removed machines %v, want [orphan]", rt.deleted)
	}
}

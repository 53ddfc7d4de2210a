package worker

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/store"
)

// diskRuntime is a stand-in runtime for the worker's side of disk limits:
// the measuring is sandbox/docker's (TestDiskOverruns, real dockerd).
type diskRuntime struct {
	sandbox.Runtime
	over    []sandbox.DiskOverrun
	stopped []string
}

func (r *diskRuntime) DiskOverruns(context.Context) ([]sandbox.DiskOverrun, error) {
	return r.over, nil
}

func (r *diskRuntime) Stop(_ context.Context, id string) error {
	r.stopped = append(r.stopped, id)
	return nil
}

// TestCheckDisks (issue 10, Docker without a disk quota): a sandbox over its
// disk limit is marked failed with the sizes, only if it is still running
// or pooled, and then stopped; one a delete got to first is left alone.
func TestCheckDisks(t *testing.T) {
	t.Parallel()
	rt := &diskRuntime{over: []sandbox.DiskOverrun{{ID: "vm1", UsedMB: 40, LimitMB: 16}, {ID: "vm2", UsedMB: 30, LimitMB: 16}}}
	var msgs []string
	st := &fakeStore{VMUpdateImpl: func(_ context.Context, p *store.VMUpdateParams) (*store.VM, error) {
		if !reflect.DeepEqual(p.IfStatus, []string{store.VMRunning, store.VMPooled}) {
			t.Errorf("VMUpdate %s guarded by %v, want running or pooled", p.ID, p.IfStatus)
		}
		if p.ID == "vm2" {
			return nil, errdefs.Conflict("sandbox vm2 is deleting")
		}
		msgs = append(msgs, *p.Error)
		return &store.VM{ID: p.ID}, nil
	}}
	w, _ := newTestWorker(t, st, &fakeQueue{})
	w.rt = rt
	w.checkDisks(context.Background())
	if got, want := st.written(), []string{"VMUpdate vm1 failed", "VMUpdate vm2 failed"}; !reflect.DeepEqual(got, want) {
		t.Errorf("writes %v, want %v", got, want)
	}
	if len(msgs) != 1 || !strings.Contains(msgs[0], "wrote 40 MiB, over its limit of 16 MiB") {
		t.Errorf("error recorded: %q", msgs)
	}
	if !reflect.DeepEqual(rt.stopped, []string{"vm1"}) {
		t.Errorf("stopped %v, want only vm1 (vm2 is being deleted)", rt.stopped)
	}
}

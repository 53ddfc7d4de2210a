package worker

import (
	"context"
	"fmt"
	"testing"

	"github.com/aetherium/aetherium/internal/store"
)

// TestFillPoolsRespectsCapacity checks that pool sandboxes count against the
// worker's capacity and memory budget: with room for n more sandboxes, a refill starts at most
// n pool sandboxes (and never more than maxPoolStarts at a time), and a full
// worker starts none.
func TestFillPoolsRespectsCapacity(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		capacity, memoryMB, load, poolSize, want int
	}{
		{capacity: 10, load: 0, poolSize: 5, want: maxPoolStarts},
		{capacity: 10, load: 9, poolSize: 5, want: 1},
		{capacity: 10, load: 10, poolSize: 5, want: 0},
		{capacity: 10, load: 12, poolSize: 5, want: 0},
		{memoryMB: 512 * 10, load: 9, poolSize: 5, want: 1}, // a memory budget of 10 pool sandboxes
		{memoryMB: 512 * 10, load: 10, poolSize: 5, want: 0},
		{memoryMB: 512*10 + 511, load: 10, poolSize: 5, want: 0},
	} {
		t.Run(fmt.Sprintf("%d of %d or %d MiB", tc.load, tc.capacity, tc.memoryMB), func(t *testing.T) {
			t.Parallel()
			rec := &taskRecorder{}
			st := &fakeStore{
				TemplateListImpl: func(context.Context, string) ([]*store.Template, error) {
					return []*store.Template{{ID: "tpl1", Name: "node", WorkerID: "w1", Status: store.TemplateReady,
						PoolSize: tc.poolSize, Image: "aetherium/tpl:1", ProjectID: "p1"}}, nil
				},
				VMListImpl: func(context.Context, *store.VMListParams) ([]*store.VM, error) { return nil, nil },
				WorkerLoadImpl: func(context.Context) (map[string]store.Load, error) {
					return map[string]store.Load{"w1": {Sandboxes: tc.load, VCPUs: tc.load, MemoryMB: 512 * tc.load}, "w2": {}}, nil
				},
				TaskInsertImpl: rec.insert,
			}
			w, _ := newTestWorker(t, st, rec.queue(nil))
			w.cfg.Capacity, w.cfg.MemoryMB = tc.capacity, tc.memoryMB
			w.fillPools(context.Background())
			if len(rec.rows) != tc.want {
				t.Fatalf("started %d pool sandboxes, want %d", len(rec.rows), tc.want)
			}
		})
	}
}

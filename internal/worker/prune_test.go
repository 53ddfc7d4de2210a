package worker

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestPruneHistory: the retention sweep deletes in batches until a batch
// comes back empty, at most pruneBatches per reconcile, with the cutoff the
// retention gives; retention 0 keeps everything.
func TestPruneHistory(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		retention time.Duration
		results   []int64
		err       error
		wantCalls int
	}{
		{"keep forever", 0, nil, nil, 0},
		{"until empty", time.Hour, []int64{pruneBatch, pruneBatch, 5, 0}, nil, 4},
		{"nothing to prune", time.Hour, []int64{0}, nil, 1},
		{"backlog bounded per reconcile", time.Hour, slices.Repeat([]int64{pruneBatch}, 100), nil, pruneBatches},
		{"error stops", time.Hour, []int64{pruneBatch}, errors.New("db down"), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			st := &fakeStore{HistoryPruneImpl: func(_ context.Context, before time.Time, limit int) (int64, error) {
				if d := time.Since(before); d < tt.retention || d > tt.retention+time.Minute || limit != pruneBatch {
					t.Errorf("HistoryPrune(before %s ago, limit %d), want %s ago, %d", d, limit, tt.retention, pruneBatch)
				}
				calls++
				return tt.results[calls-1], tt.err
			}}
			w, _ := newTestWorker(t, st, nil)
			w.cfg.Retention = tt.retention
			w.pruneHistory(context.Background())
			if calls != tt.wantCalls {
				t.Errorf("%d HistoryPrune calls, want %d", calls, tt.wantCalls)
			}
		})
	}
}

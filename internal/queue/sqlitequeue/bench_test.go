package sqlitequeue_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/queue/sqlitequeue"
)

// BenchmarkPickup measures enqueue → handler start on the embedded queue with
// the daemon's default settings (5ms poll), one message at a time.
func BenchmarkPickup(b *testing.B) {
	q, err := sqlitequeue.New(context.Background(), sqlitequeue.Config{Path: filepath.Join(b.TempDir(), "q.db"), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	started := make(chan time.Time, 1)
	if err := q.Start(context.Background(), func(ctx context.Context, d *queue.Delivery) error {
		started <- time.Now()
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	defer q.Stop(context.Background())
	lat := make([]time.Duration, 0, b.N)
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := q.Enqueue(context.Background(), &queue.Message{ID: uuid.NewString(), Type: "bench"}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, (<-started).Sub(t0))
	}
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.Logf("pickup latency: p50 %s p99 %s (n=%d)", p50, p99, len(lat))
}

package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/store/sqlite"
)

// BenchmarkVMListPages is the store's part of `GET /api/v1/vms?limit=50` at
// 500 sandboxes (issue 13): it walks the project's pages of 50 (cursor after
// the last ID) and, alternating in the same run, reads single sandboxes by
// primary key, the cheapest read there is. Reported: p50 / p99 of each. If
// the page's p99 is near the single read's, a slow page in the density run
// is the machine, not the query.
func BenchmarkVMListPages(b *testing.B) {
	const n, limit = 500, 50
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "aether.db"), sqlite.SyncFull)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
		if _, err := s.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: store.DefaultProjectID, Type: "vm:create", Priority: "high",
			VM: &store.VMInsertParams{ID: ids[i], Name: fmt.Sprintf("d-%d", i), Image: "img", Runtime: "docker", VCPUs: 1, MemoryMB: 512}}); err != nil {
			b.Fatal(err)
		}
	}
	var pages, gets []time.Duration
	for b.Loop() {
		cursor := ""
		for {
			t0 := time.Now()
			vms, err := s.VMList(ctx, &store.VMListParams{ProjectID: store.DefaultProjectID, After: cursor, Limit: limit})
			if err != nil {
				b.Fatal(err)
			}
			pages = append(pages, time.Since(t0))
			t0 = time.Now()
			if _, err := s.VMGet(ctx, &store.VMGetParams{ProjectID: store.DefaultProjectID, IDOrName: ids[len(gets)%n]}); err != nil {
				b.Fatal(err)
			}
			gets = append(gets, time.Since(t0))
			if len(vms) < limit {
				break
			}
			cursor = vms[len(vms)-1].ID
		}
	}
	pct := func(d []time.Duration, p float64) float64 {
		slices.Sort(d)
		return float64(d[int(float64(len(d)-1)*p)].Microseconds()) / 1000
	}
	b.ReportMetric(pct(pages, 0.5), "page-p50-ms")
	b.ReportMetric(pct(pages, 0.99), "page-p99-ms")
	b.ReportMetric(pct(gets, 0.5), "get-p50-ms")
	b.ReportMetric(pct(gets, 0.99), "get-p99-ms")
	b.Logf("%d sandboxes, pages of %d (n=%d): p50 %.2f ms p99 %.2f ms; by primary key (n=%d): p50 %.2f ms p99 %.2f ms",
		n, limit, len(pages), pct(pages, 0.5), pct(pages, 0.99), len(gets), pct(gets, 0.5), pct(gets, 0.99))
}

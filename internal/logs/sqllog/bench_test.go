package sqllog

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/logs"
)

func benchRecords(n int) []logs.Record {
	recs := make([]logs.Record, n)
	t0 := time.Now()
	for i := range recs {
		recs[i] = logs.Record{Time: t0.Add(time.Duration(i) * time.Microsecond), Line: fmt.Sprintf("line %d of a command's output", i),
			Labels: logs.Labels{Project: "default", VMID: fmt.Sprintf("vm-%d", i%100), TaskID: "t", ExecutionID: "e", Stream: logs.StreamStdout, Level: logs.LevelInfo}}
	}
	return recs
}

// BenchmarkIngest measures lines/s into the SQLite log store in the
// pipeline's batches (2048), against writing the same lines to a file.
func BenchmarkIngest(b *testing.B) {
	recs := benchRecords(2048)
	b.Run("sqlite", func(b *testing.B) {
		st, err := OpenSQLite(b.Context(), filepath.Join(b.TempDir(), "logs.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		for b.Loop() {
			if err := st.Append(b.Context(), recs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "lines/s")
	})
	b.Run("file", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "out.log"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		for b.Loop() {
			var buf []byte
			for i := range recs {
				buf = append(append(buf, recs[i].Line...), '\n')
			}
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "lines/s")
	})
}

// BenchmarkQuery measures query latency over 1M records (AETHER_BENCH_RECORDS
// to change): the newest page of one sandbox, a text match, and a page
// deep in the past by cursor.
func BenchmarkQuery(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("AETHER_BENCH_RECORDS"); v != "" {
		fmt.Sscan(v, &n)
	}
	st, err := OpenSQLite(b.Context(), filepath.Join(b.TempDir(), "logs.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	for done := 0; done < n; done += 2048 {
		if err := st.Append(b.Context(), benchRecords(min(2048, n-done))); err != nil {
			b.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name string
		q    logs.Query
	}{
		{"newest-100-of-a-sandbox", logs.Query{Labels: logs.Labels{Project: "default", VMID: "vm-7"}}},
		{"newest-100-of-project", logs.Query{Labels: logs.Labels{Project: "default"}}},
		{"text-match", logs.Query{Labels: logs.Labels{Project: "default", VMID: "vm-7"}, Contains: "line 4242"}},
		{"page-by-cursor", logs.Query{Labels: logs.Labels{Project: "default"}, Cursor: logs.Cursor(int64(n / 2))}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				q := tt.q
				start := time.Now()
				if _, err := st.Query(b.Context(), &q); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

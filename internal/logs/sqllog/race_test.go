package sqllog

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/aetherium/aetherium/internal/logs"
)

// TestConcurrentAppendAndQuery queries while appends run. An attempt to
// reproduce a query that failed once with modernc's "missing argument with
// index 4" in a loaded full e2e run; it does not reproduce it (cause open).
func TestConcurrentAppendAndQuery(t *testing.T) {
	t.Parallel()
	st, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "logs.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 200 {
			if err := st.Append(t.Context(), benchRecords(300)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 500 {
		q := logs.Query{Labels: logs.Labels{Project: "default", VMID: "vm-1"}, Direction: logs.Forward}
		if _, err := st.Query(t.Context(), &q); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

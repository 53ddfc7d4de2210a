package sqllog

import (
	"path/filepath"
	"testing"

	"github.com/aetherium/aetherium/internal/logs"
	"github.com/aetherium/aetherium/internal/logs/logstest"
	"github.com/aetherium/aetherium/internal/testbin"
)

func TestSQLite(t *testing.T) {
	t.Parallel()
	logstest.Run(t, func(t *testing.T) logs.Store {
		st, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "logs.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	logstest.Run(t, func(t *testing.T) logs.Store {
		st, err := OpenPostgres(t.Context(), testbin.PostgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}

// TestSQLiteReopenContinuesIDs: IDs after a restart continue past the
// stored ones, so cursors stay valid.
func TestSQLiteReopenContinuesIDs(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "logs.db")
	ids := make([]int64, 2)
	for i := range ids {
		st, err := OpenSQLite(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		recs := []logs.Record{{Line: "x"}}
		if err := st.Append(t.Context(), recs); err != nil {
			t.Fatal(err)
		}
		ids[i] = recs[0].ID
		st.Close()
	}
	if ids[1] <= ids[0] {
		t.Errorf("IDs %v: not increasing across reopen", ids)
	}
}

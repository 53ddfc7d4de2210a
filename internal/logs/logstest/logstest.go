// Package logstest is the conformance suite every logs.Store passes (SQLite
// and PostgreSQL). Only tests import it.
package logstest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/logs"
)

// Run runs the suite; newStore returns an empty store, closed by the caller's
// cleanup.
func Run(t *testing.T, newStore func(t *testing.T) logs.Store) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	// seed stores 10 records: vm a (0..5, stdout/stderr alternating), vm b
	// (6..8, lifecycle), and one of another project (9).
	seed := func(t *testing.T) logs.Store {
		st := newStore(t)
		var recs []logs.Record
		for i := range 10 {
			r := logs.Record{Time: t0.Add(time.Duration(i) * time.Second), Line: fmt.Sprintf("line %d", i),
				Labels: logs.Labels{Project: "p1", VMID: "a", TaskID: "t1", Stream: logs.StreamStdout, Level: logs.LevelInfo}}
			if i%2 == 1 {
				r.Stream = logs.StreamStderr
			}
			if i >= 6 {
				r.VMID, r.TaskID, r.Stream = "b", "", logs.StreamLifecycle
			}
			if i == 9 {
				r.Project = "p2"
			}
			recs = append(recs, r)
		}
		if err := st.Append(t.Context(), recs[:4]); err != nil {
			t.Fatal(err)
		}
		if err := st.Append(t.Context(), recs[4:]); err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(recs); i++ {
			if recs[i].ID <= recs[i-1].ID {
				t.Fatalf("IDs not increasing: %d then %d", recs[i-1].ID, recs[i].ID)
			}
		}
		return st
	}
	lines := func(res *logs.Result) []string {
		var out []string
		for _, r := range res.Records {
			out = append(out, r.Line)
		}
		return out
	}

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		st := seed(t)
		tests := []struct {
			name string
			q    logs.Query
			want []string
		}{
			{"project only, newest first", logs.Query{Labels: logs.Labels{Project: "p1"}},
				[]string{"line 8", "line 7", "line 6", "line 5", "line 4", "line 3", "line 2", "line 1", "line 0"}},
			{"other project", logs.Query{Labels: logs.Labels{Project: "p2"}}, []string{"line 9"}},
			{"no project matches no project's records", logs.Query{}, nil},
			{"vm and stream, forward", logs.Query{Labels: logs.Labels{Project: "p1", VMID: "a", Stream: logs.StreamStderr}, Direction: logs.Forward},
				[]string{"line 1", "line 3", "line 5"}},
			{"task", logs.Query{Labels: logs.Labels{Project: "p1", TaskID: "t1"}, Limit: 2}, []string{"line 5", "line 4"}},
			{"time range", logs.Query{Labels: logs.Labels{Project: "p1"}, Since: t0.Add(2 * time.Second), Until: t0.Add(4 * time.Second), Direction: logs.Forward},
				[]string{"line 2", "line 3"}},
			{"text match", logs.Query{Labels: logs.Labels{Project: "p1"}, Contains: "ne 7"}, []string{"line 7"}},
			{"text match is literal", logs.Query{Labels: logs.Labels{Project: "p1"}, Contains: "%"}, nil},
			{"level", logs.Query{Labels: logs.Labels{Project: "p1", Level: logs.LevelError}}, nil},
		}
		for _, tt := range tests {
			res, err := st.Query(t.Context(), &tt.q)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if got := lines(res); !slices.Equal(got, tt.want) {
				t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
			}
		}
	})

	t.Run("CursorPagesBothWays", func(t *testing.T) {
		t.Parallel()
		st := seed(t)
		for _, dir := range []logs.Direction{logs.Forward, logs.Backward} {
			var all []string
			q := logs.Query{Labels: logs.Labels{Project: "p1"}, Limit: 4, Direction: dir}
			for pages := 0; ; pages++ {
				res, err := st.Query(t.Context(), &q)
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, lines(res)...)
				if res.Next == "" {
					if pages != 2 {
						t.Errorf("%s: %d pages, want 3", dir, pages+1)
					}
					break
				}
				q.Cursor = res.Next
			}
			want := []string{"line 0", "line 1", "line 2", "line 3", "line 4", "line 5", "line 6", "line 7", "line 8"}
			if dir == logs.Backward {
				slices.Reverse(want)
			}
			if !slices.Equal(all, want) {
				t.Errorf("%s pages: got %q, want %q", dir, all, want)
			}
		}
	})

	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		st := newStore(t)
		in := logs.Record{Time: time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC), Line: "héllo\tworld", Truncated: true,
			Labels: logs.Labels{Project: "p", VMID: "v", TaskID: "t", ExecutionID: "e", Stream: "stdout", Level: "warn"}}
		if err := st.Append(t.Context(), []logs.Record{in}); err != nil {
			t.Fatal(err)
		}
		res, err := st.Query(t.Context(), &logs.Query{Labels: logs.Labels{Project: "p"}})
		if err != nil || len(res.Records) != 1 {
			t.Fatalf("query: %v, %d records", err, len(res.Records))
		}
		got := res.Records[0]
		in.ID, in.Time = got.ID, in.Time.Truncate(time.Microsecond)
		if got != in {
			t.Errorf("got %+v, want %+v", got, in)
		}
	})

	t.Run("Prune", func(t *testing.T) {
		t.Parallel()
		st := seed(t)
		n, err := st.Prune(t.Context(), t0.Add(2*time.Second), 5)
		if err != nil {
			t.Fatal(err)
		}
		if n != 5 { // 0 and 1 by age, then 2, 3, 4 by count
			t.Errorf("pruned %d, want 5", n)
		}
		res, err := st.Query(t.Context(), &logs.Query{Labels: logs.Labels{Project: "p1"}, Direction: logs.Forward})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := lines(res), []string{"line 5", "line 6", "line 7", "line 8"}; !slices.Equal(got, want) {
			t.Errorf("after prune: got %q, want %q", got, want)
		}
		// IDs keep increasing after a prune.
		recs := []logs.Record{{Time: t0, Line: "new", Labels: logs.Labels{Project: "p1"}}}
		if err := st.Append(t.Context(), recs); err != nil {
			t.Fatal(err)
		}
		if c, _ := logs.ParseCursor(logs.Cursor(recs[0].ID)); c <= 9 {
			t.Errorf("ID after prune %d, want > the old ones", recs[0].ID)
		}
	})

	t.Run("InvalidQuery", func(t *testing.T) {
		t.Parallel()
		st := newStore(t)
		for _, q := range []logs.Query{{Limit: logs.MaxLimit + 1}, {Direction: "sideways"}, {Cursor: "nope"},
			{Since: t0, Until: t0}} {
			if _, err := st.Query(t.Context(), &q); !errors.Is(err, logs.ErrInvalidQuery) {
				t.Errorf("query %+v: error %v, want ErrInvalidQuery", q, err)
			}
		}
	})
}

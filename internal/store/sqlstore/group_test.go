package sqlstore

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"
)

// TestCommitGroupIsolatesWrites: in one group commit, a write whose
// caller's context is already done when its statement runs still commits
// (SQLite would otherwise interrupt the statement and end the whole
// transaction, losing the other writes), and a write that fails after
// writing part of its change is undone alone.
func TestCommitGroupIsolatesWrites(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "g.db")+"?_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t (n INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	s := New(db, Dialect{SerializeWrites: true, GroupCommit: true}, nil)
	insert := func(ctx context.Context, n int) func(queryRow) error {
		return func(q queryRow) error {
			var got int
			return q(ctx, `INSERT INTO t (n) VALUES (?) RETURNING n`, n).Scan(&got)
		}
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	bg := context.Background()
	failsAfterWriting := func(q queryRow) error {
		if err := insert(bg, 3)(q); err != nil {
			return err
		}
		return insert(bg, 1)(q) // 1 is taken: a constraint error after 3 was written
	}
	batch := []*groupWrite{
		{ctx: bg, fn: insert(bg, 1)},
		{ctx: bg, fn: insert(gone, 2)}, // its statement runs with a done context
		{ctx: bg, fn: failsAfterWriting},
		{ctx: bg, fn: insert(bg, 4)},
	}
	for _, w := range batch {
		w.done = make(chan error, 1)
	}
	s.commitGroup(bg, batch)
	var errs []error
	for _, w := range batch {
		errs = append(errs, <-w.done)
	}
	if errs[0] != nil || errs[1] != nil || errs[2] == nil || errs[3] != nil {
		t.Errorf("errors %v, want only the third write's", errs)
	}
	var ns []int
	rows, err := db.Query(`SELECT n FROM t ORDER BY n`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n int
		rows.Scan(&n)
		ns = append(ns, n)
	}
	if len(ns) != 3 || ns[0] != 1 || ns[1] != 2 || ns[2] != 4 {
		t.Errorf("committed rows %v, want [1 2 4]", ns)
	}
}

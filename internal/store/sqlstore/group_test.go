package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// TestCommitGroupIsolatesWrites: in one group commit, a write whose
// caller's context is already done when its statement runs still commits
// (SQLite would otherwise interrupt the statement and end the whole
// transaction, losing the other writes), and a write that fails after
// writing part of its change is undone alone; alone in its batch too.
func TestCommitGroupIsolatesWrites(t *testing.T) {
	t.Parallel()
	d := Dialect{SerializeWrites: true, GroupCommit: true}
	db := openSQLite(t, filepath.Join(t.TempDir(), "g.db"), `CREATE TABLE t (n INTEGER PRIMARY KEY)`)
	defer db.Close()
	s := New(db, d, nil)
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
	alone := &groupWrite{ctx: bg, fn: insert(bg, 5), done: make(chan error, 1)}
	s.commitGroup(bg, []*groupWrite{alone})
	if err := <-alone.done; err != nil {
		t.Fatalf("a write alone: %v", err)
	}
	alone = &groupWrite{ctx: bg, fn: func(q queryRow) error {
		if err := insert(bg, 6)(q); err != nil {
			return err
		}
		return insert(bg, 5)(q) // 5 is taken
	}, done: make(chan error, 1)}
	s.commitGroup(bg, []*groupWrite{alone})
	if err := <-alone.done; err == nil {
		t.Errorf("a failing write alone: no error")
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
	if !slices.Equal(ns, []int{1, 2, 4, 5}) {
		t.Errorf("committed rows %v, want [1 2 4 5]", ns)
	}
}

// TestDurableWithinRidesAlong: a lingering durable write (an audit entry)
// is committed by the next durable write's transaction, not by a flush of
// its own; one whose caller gives up while it lingers is withdrawn, never
// written.
func TestDurableWithinRidesAlong(t *testing.T) {
	t.Parallel()
	db := openSQLite(t, filepath.Join(t.TempDir(), "g.db"), `CREATE TABLE t (n INTEGER PRIMARY KEY)`)
	defer db.Close()
	s := New(db, Dialect{SerializeWrites: true, GroupCommit: true}, nil)
	insert := func(n int) func(queryRow) error {
		return func(q queryRow) error {
			var got int
			return q(context.Background(), `INSERT INTO t (n) VALUES (?) RETURNING n`, n).Scan(&got)
		}
	}
	pending := func(n int) {
		for {
			s.group.mu.Lock()
			l := len(s.group.pending)
			s.group.mu.Unlock()
			if l == n {
				return
			}
			runtime.Gosched()
		}
	}
	count := func(n int) (c int) {
		db.QueryRow(`SELECT count(*) FROM t WHERE n = ?`, n).Scan(&c)
		return c
	}
	lingered := make(chan error, 1)
	go func() { lingered <- s.durableWithin(context.Background(), time.Hour, insert(1)) }()
	pending(1)
	if err := s.durable(context.Background(), insert(2)); err != nil {
		t.Fatal(err)
	}
	if count(1) != 1 {
		t.Fatal("the lingering write was not committed with the next durable write")
	}
	if err := <-lingered; err != nil {
		t.Errorf("lingering write: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { lingered <- s.durableWithin(ctx, time.Hour, insert(3)) }()
	pending(1)
	cancel()
	if err := <-lingered; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled while lingering: %v, want context.Canceled", err)
	}
	if err := s.durable(context.Background(), insert(4)); err != nil {
		t.Fatal(err)
	}
	if count(3) != 0 || count(4) != 1 {
		t.Errorf("rows 3, 4: %d, %d; want the withdrawn write absent", count(3), count(4))
	}
}

// openSQLite opens a SQLite file at path as the store opens one (WAL,
// immediate write transactions) and runs schema in it.
func openSQLite(t *testing.T, path, schema string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(schema); err != nil {
		t.Fatal(err)
	}
	return db
}

package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	_ "modernc.org/sqlite"
)

// openStmtStore opens a SQLite file holding table t (a, b) with one row,
// and a Store over it that keeps statements prepared.
func openStmtStore(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.db")
	db := openSQLite(t, path, `CREATE TABLE t (a TEXT, b TEXT); INSERT INTO t VALUES ('a1', 'b1')`)
	s := New(db, Dialect{SerializeWrites: true, PrepareStatements: true}, nil)
	t.Cleanup(func() { s.Close() })
	return s, path
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

func readAB(t *testing.T, s *Store) (string, string) {
	t.Helper()
	var a, b string
	if err := s.db.QueryRowContext(context.Background(), `SELECT a, b FROM t`).Scan(&a, &b); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// TestStmtCacheReusesStatements: a statement is prepared once and the same
// *sql.Stmt serves every later call, in and out of transactions.
func TestStmtCacheReusesStatements(t *testing.T) {
	t.Parallel()
	s, _ := openStmtStore(t)
	ctx := context.Background()
	readAB(t, s)
	first := s.db.stmts.m[`SELECT a, b FROM t`]
	if first == nil {
		t.Fatalf("SELECT not cached: %v", s.db.stmts.m)
	}
	readAB(t, s)
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var a, b string
	if err := tx.QueryRowContext(ctx, `SELECT a, b FROM t`).Scan(&a, &b); err != nil || a != "a1" || b != "b1" {
		t.Fatalf("in a transaction: %q %q %v", a, b, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE t SET a = ?`, "a2"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := s.db.stmts.m[`SELECT a, b FROM t`]; got != first || len(s.db.stmts.m) != 2 {
		t.Errorf("cache after reuse: %v (first %p), want the first statement and the UPDATE", s.db.stmts.m, first)
	}
	if a, _ := readAB(t, s); a != "a2" {
		t.Errorf("after the transaction: a = %q, want a2", a)
	}
}

// TestStmtCacheAfterSchemaChange: a statement prepared before another
// connection rebuilt its table (a migration) reads the new table, not the
// shape it was prepared for: SQLite re-prepares it.
func TestStmtCacheAfterSchemaChange(t *testing.T) {
	t.Parallel()
	s, path := openStmtStore(t)
	if a, b := readAB(t, s); a != "a1" || b != "b1" {
		t.Fatalf("before: %q %q", a, b)
	}
	other, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Exec(`DROP TABLE t; CREATE TABLE t (b TEXT, x INTEGER, a TEXT); INSERT INTO t VALUES ('b2', 7, 'a2')`); err != nil {
		t.Fatal(err)
	}
	if a, b := readAB(t, s); a != "a2" || b != "b2" {
		t.Errorf("after the schema change: a, b = %q, %q, want a2, b2", a, b)
	}
}

// TestStmtCacheClose: once the store is closed its statements are closed
// and the cache prepares nothing more; calls fail instead of using them.
func TestStmtCacheClose(t *testing.T) {
	t.Parallel()
	s, _ := openStmtStore(t)
	readAB(t, s)
	st := s.db.stmts.m[`SELECT a, b FROM t`]
	s.Close()
	if s.db.stmts.m != nil || s.db.stmts.get(context.Background(), s.db.DB, `SELECT a FROM t`) != nil {
		t.Errorf("cache after Close: %v", s.db.stmts.m)
	}
	if err := st.QueryRow().Scan(new(string), new(string)); err == nil {
		t.Error("a statement cached before Close still runs")
	}
	if err := s.db.QueryRowContext(context.Background(), `SELECT a, b FROM t`).Scan(new(string), new(string)); err == nil {
		t.Error("a query after Close succeeded")
	}
}

// TestStmtCacheBound: past maxStmts texts, statements run unprepared and
// the cache does not grow.
func TestStmtCacheBound(t *testing.T) {
	t.Parallel()
	s, _ := openStmtStore(t)
	ctx := context.Background()
	for i := range maxStmts + 10 {
		var n int
		if err := s.db.QueryRowContext(ctx, fmt.Sprintf(`SELECT %d`, i)).Scan(&n); err != nil || n != i {
			t.Fatalf("SELECT %d: %d %v", i, n, err)
		}
	}
	if len(s.db.stmts.m) != maxStmts {
		t.Errorf("cached %d statements, want the bound %d", len(s.db.stmts.m), maxStmts)
	}
}

// TestStmtCacheConcurrentFirstUse: callers racing to prepare the same text
// all get correct results, and one statement stays cached.
func TestStmtCacheConcurrentFirstUse(t *testing.T) {
	t.Parallel()
	s, _ := openStmtStore(t)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			var a, b string
			if err := s.db.QueryRowContext(context.Background(), `SELECT a, b FROM t`).Scan(&a, &b); err != nil || a != "a1" {
				t.Errorf("concurrent read: %q %v", a, err)
			}
		})
	}
	wg.Wait()
	if len(s.db.stmts.m) != 1 {
		t.Errorf("cache %v, want one statement", s.db.stmts.m)
	}
}

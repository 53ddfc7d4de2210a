package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// openCached opens a database file holding table t (a, b) with one row
// through OpenDB, on one connection, and returns it with that connection's
// cache.
func openCached(t *testing.T) (*sql.DB, string, func() *cachingConn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.db")
	db, err := OpenDB(path, SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE t (a TEXT, b TEXT); INSERT INTO t VALUES ('a1', 'b1')`); err != nil {
		t.Fatal(err)
	}
	conn := func() *cachingConn {
		t.Helper()
		c, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var cc *cachingConn
		c.Raw(func(dc any) error { cc = dc.(*cachingConn); return nil })
		return cc
	}
	return db, path, conn
}

func readAB(t *testing.T, q interface {
	QueryRow(string, ...any) *sql.Row
}) (string, string) {
	t.Helper()
	var a, b string
	if err := q.QueryRow(`SELECT a, b FROM t WHERE a != ?`, "none").Scan(&a, &b); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// TestStatementsStayPrepared: a statement is prepared once and serves every
// later call of its text, in and out of transactions; a second query of the
// same text while the first's rows are open runs on its own and both read
// right.
func TestStatementsStayPrepared(t *testing.T) {
	db, _, conn := openCached(t)
	readAB(t, db)
	first := conn().stmts[`SELECT a, b FROM t WHERE a != ?`]
	if first == nil {
		t.Fatalf("SELECT not kept: %v", conn().stmts)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if a, b := readAB(t, tx); a != "a1" || b != "b1" {
		t.Fatalf("in a transaction: %q %q", a, b)
	}
	if _, err := tx.Exec(`UPDATE t SET a = ?`, "a2"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO t VALUES (?, ?)`, "a3", "b3"); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(`SELECT a, b FROM t WHERE a != ?`, "none")
	if err != nil {
		t.Fatal(err)
	}
	var outer []string
	for rows.Next() {
		var a, b string
		rows.Scan(&a, &b)
		if a2, _ := readAB(t, tx); a2 != "a2" { // the same text, its statement busy
			t.Errorf("nested read: %q", a2)
		}
		outer = append(outer, a)
	}
	rows.Close()
	if fmt.Sprint(outer) != "[a2 a3]" {
		t.Errorf("outer rows %v, want [a2 a3]", outer)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := conn().stmts; got[`SELECT a, b FROM t WHERE a != ?`] != first || len(got) != 4 {
		t.Errorf("kept %v (first %p), want the first SELECT, the UPDATE, the INSERT and the schema", got, first)
	}
	if a, _ := readAB(t, db); a != "a2" {
		t.Errorf("after the transaction: a = %q, want a2", a)
	}
}

// TestStatementsAfterSchemaChange: a statement prepared before another
// connection rebuilt its table (a migration) reads the new table, not the
// shape it was prepared for: SQLite re-prepares it.
func TestStatementsAfterSchemaChange(t *testing.T) {
	db, path, _ := openCached(t)
	if a, b := readAB(t, db); a != "a1" || b != "b1" {
		t.Fatalf("before: %q %q", a, b)
	}
	other, err := OpenDB(path, SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Exec(`DROP TABLE t; CREATE TABLE t (b TEXT, x INTEGER, a TEXT); INSERT INTO t VALUES ('b2', 7, 'a2')`); err != nil {
		t.Fatal(err)
	}
	if a, b := readAB(t, db); a != "a2" || b != "b2" {
		t.Errorf("after the schema change: a, b = %q, %q, want a2, b2", a, b)
	}
}

// TestStatementsBound: past maxStmts texts the least recently used
// statement is closed, and the connection keeps at most maxStmts; a text
// whose size the data decides (a multi-row insert, a long IN list) runs
// unprepared and is not kept.
func TestStatementsBound(t *testing.T) {
	db, _, conn := openCached(t)
	readAB(t, db)
	hot := conn().stmts[`SELECT a, b FROM t WHERE a != ?`]
	for i := range maxStmts + 10 {
		var n int
		if err := db.QueryRow(fmt.Sprintf(`SELECT %d`, i)).Scan(&n); err != nil || n != i {
			t.Fatalf("SELECT %d: %d %v", i, n, err)
		}
		readAB(t, db) // used all along: kept
	}
	c := conn()
	if len(c.stmts) != maxStmts || len(c.order) != maxStmts || c.stmts[`SELECT 0`] != nil ||
		c.stmts[fmt.Sprintf(`SELECT %d`, maxStmts+9)] == nil || c.stmts[`SELECT a, b FROM t WHERE a != ?`] != hot {
		t.Errorf("kept %d statements (%d in order), want the newest %d and the one used all along, never closed", len(c.stmts), len(c.order), maxStmts)
	}
	rows := strings.Repeat("(?, ?), ", maxStmtParams/2) + "(?, ?)"
	args := make([]any, maxStmtParams+2)
	for i := range args {
		args[i] = fmt.Sprint(i)
	}
	if _, err := db.Exec(`INSERT INTO t VALUES `+rows, args...); err != nil {
		t.Fatal(err)
	}
	if _, ok := conn().stmts[`INSERT INTO t VALUES `+rows]; ok {
		t.Errorf("a %d-parameter insert was kept", len(args))
	}
}

// TestStatementsConcurrent: many goroutines on a pool of connections read
// and write through kept statements and all get right answers.
func TestStatementsConcurrent(t *testing.T) {
	db, _, _ := openCached(t)
	db.SetMaxOpenConns(4)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 20 {
				if _, err := db.Exec(`INSERT INTO t VALUES (?, ?)`, fmt.Sprint("x", i), fmt.Sprint(j)); err != nil {
					t.Error(err)
					return
				}
				var n int
				if err := db.QueryRow(`SELECT count(*) FROM t WHERE a = ?`, fmt.Sprint("x", i)).Scan(&n); err != nil || n != j+1 {
					t.Errorf("goroutine %d after %d inserts: count %d, %v", i, j+1, n, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

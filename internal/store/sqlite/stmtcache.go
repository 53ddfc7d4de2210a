package sqlite

import (
	"context"
	"database/sql/driver"
	"reflect"
	"slices"
	"strings"
)

// maxStmts bounds one connection's prepared statements. Our queries and
// River's are fixed texts or a few variants of each, well under this; past
// it, the least recently used statement not in use is closed.
const maxStmts = 256

// A text longer than maxStmtText or with more than maxStmtParams
// parameters runs unprepared: those are multi-row inserts and IN lists
// whose size the data decides (the logs' batches of a sandbox's output
// lines, River's job ID lists), one text per size, and a prepared
// multi-row insert holds up to a few hundred KiB. River's longest fixed
// query is 3.7 KiB.
const (
	maxStmtText   = 8 << 10
	maxStmtParams = 64
)

// cachingConnector opens connections that keep the statements they run
// prepared, by their SQL text: the driver parses every unprepared call
// anew, and River's queries (its fetches, JobGetAvailable above all) took a
// quarter of aetherd's CPU during a burst of creates, nearly all of it
// parsing SQL (issue 13). A statement stays prepared on the connection that
// ran it; a schema change needs nothing here (SQLite re-prepares a
// statement whose schema changed when it next runs).
type cachingConnector struct{ driver.Connector }

func (c cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &cachingConn{conn: conn, stmts: map[string]*cachedStmt{}}, nil
}

// cachingConn is one connection and its statements. database/sql uses a
// connection from one goroutine at a time, so it needs no lock.
type cachingConn struct {
	conn  driver.Conn // the driver's: it has every context method
	stmts map[string]*cachedStmt
	order []string // SQL texts, oldest first
}

// cachedStmt is a prepared statement; busy while its rows are open (a
// second query of the same text meanwhile runs unprepared).
type cachedStmt struct {
	driver.Stmt
	busy bool
}

// stmt is q's prepared statement, prepared on first use; nil without an
// error means run q unprepared (it is busy, too big to keep, or the cache
// is full of busy statements).
func (c *cachingConn) stmt(ctx context.Context, q string) (*cachedStmt, error) {
	if s, ok := c.stmts[q]; ok {
		if s.busy {
			return nil, nil
		}
		c.touch(q)
		return s, nil
	}
	if len(q) > maxStmtText || strings.Count(q, "?") > maxStmtParams || len(c.order) >= maxStmts && !c.evict() {
		return nil, nil
	}
	st, err := c.conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	s := &cachedStmt{Stmt: st}
	c.stmts[q] = s
	c.order = append(c.order, q)
	return s, nil
}

// touch moves q to the back of the order: most recently used.
func (c *cachingConn) touch(q string) {
	if i := slices.Index(c.order, q); i >= 0 && i < len(c.order)-1 {
		c.order = append(slices.Delete(c.order, i, i+1), q)
	}
}

// evict closes the least recently used statement not in use; false if
// all are.
func (c *cachingConn) evict() bool {
	for i, q := range c.order {
		if s := c.stmts[q]; !s.busy {
			s.Close()
			delete(c.stmts, q)
			c.order = slices.Delete(c.order, i, i+1)
			return true
		}
	}
	return false
}

func (c *cachingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	s, err := c.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.conn.(driver.QueryerContext).QueryContext(ctx, q, args)
	}
	rows, err := s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	s.busy = true
	return &cachedRows{Rows: rows, s: s}, nil
}

func (c *cachingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	s, err := c.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.conn.(driver.ExecerContext).ExecContext(ctx, q, args)
	}
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

// Close closes the statements, then the connection.
func (c *cachingConn) Close() error {
	for _, s := range c.stmts {
		s.Close()
	}
	c.stmts, c.order = nil, nil
	return c.conn.Close()
}

// What database/sql asks of a connection besides, passed through. A
// statement a caller prepares itself is the caller's, not cached.

func (c *cachingConn) Prepare(q string) (driver.Stmt, error) { return c.conn.Prepare(q) }

func (c *cachingConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return c.conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
}

func (c *cachingConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *cachingConn) Ping(ctx context.Context) error { return c.conn.(driver.Pinger).Ping(ctx) }

func (c *cachingConn) ResetSession(ctx context.Context) error {
	return c.conn.(driver.SessionResetter).ResetSession(ctx)
}

func (c *cachingConn) IsValid() bool { return c.conn.(driver.Validator).IsValid() }

// cachedRows frees its statement for the next call when closed.
type cachedRows struct {
	driver.Rows
	s *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.s.busy = false
	return err
}

func (r *cachedRows) ColumnTypeDatabaseTypeName(i int) string {
	return r.Rows.(driver.RowsColumnTypeDatabaseTypeName).ColumnTypeDatabaseTypeName(i)
}

func (r *cachedRows) ColumnTypeScanType(i int) reflect.Type {
	return r.Rows.(driver.RowsColumnTypeScanType).ColumnTypeScanType(i)
}

func (r *cachedRows) ColumnTypeNullable(i int) (nullable, ok bool) {
	return r.Rows.(driver.RowsColumnTypeNullable).ColumnTypeNullable(i)
}

func (r *cachedRows) ColumnTypeLength(i int) (int64, bool) {
	return r.Rows.(driver.RowsColumnTypeLength).ColumnTypeLength(i)
}

func (r *cachedRows) ColumnTypePrecisionScale(i int) (precision, scale int64, ok bool) {
	return r.Rows.(driver.RowsColumnTypePrecisionScale).ColumnTypePrecisionScale(i)
}

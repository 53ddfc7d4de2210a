// Package sqlstore is the store.Store implementation shared by the SQLite
// and PostgreSQL stores: one set of queries over database/sql, written with ?
// placeholders and rebound per dialect. Times are stored as microseconds
// since the epoch (BIGINT) and JSON as text, so the same SQL runs on both.
// Only store/sqlite and store/postgres import it; they own drivers, DSNs and
// migrations.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
)

// Dialect is what differs between the databases.
type Dialect struct {
	// Numbered placeholders ($1, $2…) instead of ?.
	Numbered bool
	// IsUnique reports a unique-constraint violation.
	IsUnique func(error) bool
	// IsUnavailable reports that the database cannot be reached (refused,
	// shutting down, connection lost); nil means never.
	IsUnavailable func(error) bool
	// ForUpdate is appended to a SELECT of one row to lock it until the
	// transaction ends (" FOR UPDATE"); empty where write transactions are
	// serialized anyway (SQLite with BEGIN IMMEDIATE).
	ForUpdate string
	// SerializeWrites makes the store's writes (through either pool) take
	// turns on a lock in the process. For SQLite, which has one writer at a
	// time: a write that finds another in progress then waits on the lock
	// and starts the moment it is free, instead of in SQLite's busy handler,
	// which sleeps 1, 2, 5 … 100 ms between tries (the exec load's p99).
	// Other processes on the same file still meet the busy handler.
	SerializeWrites bool
	// GroupCommit commits the durable writes of the exec path (an
	// execution's finish, an audit entry) that wait at the same time in
	// one transaction: one flush to disk for them all (see Store.durable).
	// It needs SerializeWrites.
	GroupCommit bool
}

// Store is a store.Store over database/sql. It is safe for concurrent use.
type Store struct {
	db db
	// marker is the same database through connections whose commits do not
	// wait for the disk (SQLite synchronous=NORMAL in WAL mode, PostgreSQL
	// synchronous_commit=off). Only an execution's start marker is written
	// through it: it survives a crash of aetherd (the write reached the
	// database), may be lost with the machine's power, and the execution's
	// durable finish, a commit that waits, makes it durable too, since both
	// databases flush their log in order.
	marker db
	group  group
}

var _ store.Store = (*Store)(nil)

// New returns a Store over an open, migrated database. marker is the same
// database opened with commits that do not wait for the disk (see
// Store.marker); nil means every write waits.
func New(sqlDB *sql.DB, d Dialect, marker *sql.DB) *Store {
	if marker == nil {
		marker = sqlDB
	}
	var w writeTurn
	if d.SerializeWrites {
		w = make(writeTurn, 1)
	}
	return &Store{db: db{DB: sqlDB, d: d, w: w}, marker: db{DB: marker, d: d, w: w}}
}

// writeTurn is the lock of Dialect.SerializeWrites: a channel holding a
// token while a write is in progress, so waiting honours the context. A nil
// writeTurn never waits.
type writeTurn chan struct{}

// take waits for the turn; the caller gives it back with the returned func.
func (w writeTurn) take(ctx context.Context) (func(), error) {
	if w == nil {
		return func() {}, nil
	}
	select {
	case w <- struct{}{}:
		return func() { <-w }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// isWrite reports whether q changes the database (anything but a SELECT or
// a WITH query).
func isWrite(q string) bool {
	q = strings.TrimSpace(q)
	return !hasPrefixFold(q, "SELECT") && !hasPrefixFold(q, "WITH")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Close implements store.Store.
func (s *Store) Close() error {
	if s.marker.DB != s.db.DB {
		s.marker.DB.Close()
	}
	return s.db.DB.Close()
}

// db and tx rebind placeholders and translate errors for the dialect; db's
// writes and transactions take the write turn (Dialect.SerializeWrites).
// Statements are kept prepared below: by the SQLite connections
// (sqlite.OpenDB), by pgx.
type db struct {
	*sql.DB
	d Dialect
	w writeTurn
}

type tx struct {
	*sql.Tx
	d  Dialect
	db db
	// done gives the write turn back, once; Commit and Rollback call it.
	done func()
}

// row is a *sql.Row that gives the write turn back once scanned (a
// RETURNING write runs and commits while it is read).
type row struct {
	*sql.Row
	err  error
	done func()
}

func (r *row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.done()
	return r.Row.Scan(dest...)
}

func (d db) QueryRowContext(ctx context.Context, q string, args ...any) *row {
	done := func() {}
	if isWrite(q) {
		var err error
		if done, err = d.w.take(ctx); err != nil {
			return &row{err: err}
		}
	}
	return &row{Row: d.DB.QueryRowContext(ctx, rebind(d.d, q), args...), done: done}
}

func (d db) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return d.DB.QueryContext(ctx, rebind(d.d, q), args...)
}

func (d db) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if isWrite(q) {
		done, err := d.w.take(ctx)
		if err != nil {
			return nil, err
		}
		defer done()
	}
	return d.DB.ExecContext(ctx, rebind(d.d, q), args...)
}

// BeginTx begins a write transaction (SQLite: BEGIN IMMEDIATE), holding
// the write turn until Commit or Rollback.
func (d db) BeginTx(ctx context.Context) (tx, error) {
	done, err := d.w.take(ctx)
	if err != nil {
		return tx{}, err
	}
	t, err := d.beginHeld(ctx)
	if err != nil {
		done()
		return tx{}, err
	}
	t.done = sync.OnceFunc(done)
	return t, nil
}

// beginHeld begins a write transaction for a caller that already holds
// the write turn; its done does nothing.
func (d db) beginHeld(ctx context.Context) (tx, error) {
	t, err := d.DB.BeginTx(ctx, nil)
	if err != nil {
		return tx{}, err
	}
	return tx{Tx: t, d: d.d, db: d, done: func() {}}, nil
}

func (t tx) Commit() error {
	defer t.done()
	return t.Tx.Commit()
}

func (t tx) Rollback() error {
	defer t.done()
	return t.Tx.Rollback()
}

func (t tx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return t.Tx.QueryRowContext(ctx, rebind(t.d, q), args...)
}

func (t tx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.Tx.ExecContext(ctx, rebind(t.d, q), args...)
}

func rebind(d Dialect, q string) string {
	if !d.Numbered {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// micros is the column encoding of a time: microseconds since the epoch.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func fromNullMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

func now() int64 { return time.Now().UnixMicro() }

// mapErr translates database errors into errdefs classes.
func (s *Store) mapErr(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return errdefs.NotFound("%s not found", what)
	case s.db.d.IsUnique(err):
		return errdefs.AlreadyExists("%s already exists", what)
	case s.db.d.IsUnavailable != nil && s.db.d.IsUnavailable(err):
		return errdefs.Unavailable("database unavailable (%s): %v", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// queryAll runs a query and scans every row with scan. what names the rows
// in errors.
func queryAll[T any](ctx context.Context, s *Store, what string, scan func(interface{ Scan(...any) error }) (*T, error), q string, args ...any) ([]*T, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.mapErr(err, what)
	}
	defer rows.Close()
	out := []*T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, s.mapErr(err, what)
		}
		out = append(out, v)
	}
	return out, s.mapErr(rows.Err(), what)
}

// Package sqllog is the local log store (logs.Store) on database/sql, with
// two dialects: SQLite, in a file of its own in the data dir (embedded mode),
// and PostgreSQL, a table in the store's database (distributed mode). It owns
// its one table (log_records), created if missing. cmd/aetherd opens it;
// tests run logstest.Run on both dialects.
package sqllog

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/aetherium/aetherium/internal/logs"
	"github.com/aetherium/aetherium/internal/store/sqlite"
)

// Store is a logs.Store. Safe for concurrent use.
type Store struct {
	db       *sql.DB
	postgres bool
	// mu serializes appends; next is the next ID (SQLite only, where this
	// process owns the file).
	mu   sync.Mutex
	next int64
	once sync.Once
}

var _ logs.Store = (*Store)(nil)

// chunk is the most rows per INSERT statement (10 parameters each).
const chunk = 256

const schemaSQLite = `
CREATE TABLE IF NOT EXISTS log_records (
	id INTEGER PRIMARY KEY,
	ts INTEGER NOT NULL,
	project TEXT NOT NULL,
	vm_id TEXT NOT NULL,
	task_id TEXT NOT NULL,
	execution_id TEXT NOT NULL,
	stream TEXT NOT NULL,
	level TEXT NOT NULL,
	line TEXT NOT NULL,
	truncated INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS log_records_project ON log_records (project, id);
CREATE INDEX IF NOT EXISTS log_records_vm ON log_records (vm_id, id);
CREATE INDEX IF NOT EXISTS log_records_task ON log_records (task_id, id);
CREATE INDEX IF NOT EXISTS log_records_ts ON log_records (ts);
`

const schemaPostgres = `
CREATE SEQUENCE IF NOT EXISTS log_records_id_seq;
CREATE TABLE IF NOT EXISTS log_records (
	id BIGINT PRIMARY KEY,
	ts BIGINT NOT NULL,
	project TEXT NOT NULL,
	vm_id TEXT NOT NULL,
	task_id TEXT NOT NULL,
	execution_id TEXT NOT NULL,
	stream TEXT NOT NULL,
	level TEXT NOT NULL,
	line TEXT NOT NULL,
	truncated SMALLINT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_records_project ON log_records (project, id);
CREATE INDEX IF NOT EXISTS log_records_vm ON log_records (vm_id, id);
CREATE INDEX IF NOT EXISTS log_records_task ON log_records (task_id, id);
CREATE INDEX IF NOT EXISTS log_records_ts ON log_records (ts);
`

// OpenSQLite opens (creating if needed) the log store in the SQLite file at
// path. synchronous=NORMAL: a power loss may lose the last records, never
// corrupt the file. One process may own the file at a time (aetherd's
// data-dir lock ensures it).
func OpenSQLite(ctx context.Context, path string) (*Store, error) {
	db, err := sqlite.OpenDB(path, sqlite.SyncNormal)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	s := &Store{db: db}
	if err := s.init(ctx, schemaSQLite); err != nil {
		return nil, err
	}
	if err := db.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) + 1 FROM log_records").Scan(&s.next); err != nil {
		db.Close()
		return nil, fmt.Errorf("log store %s: %w", path, err)
	}
	return s, nil
}

// OpenPostgres opens the log store in the PostgreSQL database at url
// (search_path may be set in the URL), creating its table if missing.
func OpenPostgres(ctx context.Context, url string) (*Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("log store: %w", err)
	}
	s := &Store{db: db, postgres: true}
	return s, s.init(ctx, schemaPostgres)
}

func (s *Store) init(ctx context.Context, schema string) error {
	for _, stmt := range strings.Split(schema, ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			s.db.Close()
			return fmt.Errorf("log store schema: %w", err)
		}
	}
	return nil
}

// rebind turns ? placeholders into $n for PostgreSQL.
func (s *Store) rebind(q string) string {
	if !s.postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Append implements logs.Store.
func (s *Store) Append(ctx context.Context, recs []logs.Record) error {
	if len(recs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ids, err := s.reserve(ctx, len(recs))
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("log store: %w", err)
	}
	defer tx.Rollback()
	var full *sql.Stmt
	args := make([]any, 0, chunk*10)
	for start := 0; start < len(recs); start += chunk {
		part := recs[start:min(start+chunk, len(recs))]
		args = args[:0]
		for i := range part {
			r := &part[i]
			trunc := 0
			if r.Truncated {
				trunc = 1
			}
			args = append(args, ids[start+i], r.Time.UnixMicro(), r.Project, r.VMID, r.TaskID, r.ExecutionID,
				r.Stream, r.Level, r.Line, trunc)
		}
		q := insertSQL(len(part))
		if len(part) == chunk {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, s.rebind(q)); err != nil {
					return fmt.Errorf("log store: %w", err)
				}
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, s.rebind(q), args...)
		}
		if err != nil {
			return fmt.Errorf("log store: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("log store: %w", err)
	}
	for i := range recs {
		recs[i].ID = ids[i]
		recs[i].Time = time.UnixMicro(recs[i].Time.UnixMicro()).UTC()
	}
	if !s.postgres {
		s.next = ids[len(ids)-1] + 1
	}
	return nil
}

// reserve returns n new IDs in increasing order: consecutive from the
// in-memory counter on SQLite, from the sequence on PostgreSQL (where other
// processes draw from it too, so they may have gaps).
func (s *Store) reserve(ctx context.Context, n int) ([]int64, error) {
	ids := make([]int64, n)
	if !s.postgres {
		for i := range ids {
			ids[i] = s.next + int64(i)
		}
		return ids, nil
	}
	rows, err := s.db.QueryContext(ctx, "SELECT nextval('log_records_id_seq') AS id FROM generate_series(1, $1) ORDER BY id", n)
	if err != nil {
		return nil, fmt.Errorf("log store: reserve IDs: %w", err)
	}
	defer rows.Close()
	for i := 0; rows.Next() && i < n; i++ {
		if err := rows.Scan(&ids[i]); err != nil {
			return nil, fmt.Errorf("log store: reserve IDs: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("log store: reserve IDs: %w", err)
	}
	return ids, nil
}

func insertSQL(rows int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO log_records (id, ts, project, vm_id, task_id, execution_id, stream, level, line, truncated) VALUES ")
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?,?)")
	}
	return b.String()
}

// Query implements logs.Store.
func (s *Store) Query(ctx context.Context, q *logs.Query) (*logs.Result, error) {
	if err := q.Normalize(); err != nil {
		return nil, err
	}
	where := []string{"project = ?"}
	args := []any{q.Labels.Project}
	for _, f := range []struct{ col, v string }{
		{"vm_id", q.Labels.VMID}, {"task_id", q.Labels.TaskID}, {"execution_id", q.Labels.ExecutionID},
		{"stream", q.Labels.Stream}, {"level", q.Labels.Level},
	} {
		if f.v != "" {
			where, args = append(where, f.col+" = ?"), append(args, f.v)
		}
	}
	if !q.Since.IsZero() {
		where, args = append(where, "ts >= ?"), append(args, q.Since.UnixMicro())
	}
	if !q.Until.IsZero() {
		where, args = append(where, "ts < ?"), append(args, q.Until.UnixMicro())
	}
	if q.Contains != "" {
		fn := "instr(line, ?) > 0"
		if s.postgres {
			fn = "strpos(line, ?) > 0"
		}
		where, args = append(where, fn), append(args, q.Contains)
	}
	order, cmp := "DESC", "<"
	if q.Direction == logs.Forward {
		order, cmp = "ASC", ">"
	}
	if q.Cursor != "" {
		id, _ := logs.ParseCursor(q.Cursor) // checked by Normalize
		where, args = append(where, "id "+cmp+" ?"), append(args, id)
	}
	args = append(args, q.Limit+1)
	rows, err := s.db.QueryContext(ctx, s.rebind("SELECT id, ts, project, vm_id, task_id, execution_id, stream, level, line, truncated FROM log_records WHERE "+
		strings.Join(where, " AND ")+" ORDER BY id "+order+" LIMIT ?"), args...)
	if err != nil {
		return nil, fmt.Errorf("log store: %w", err)
	}
	defer rows.Close()
	res := &logs.Result{Records: []logs.Record{}}
	for rows.Next() {
		var r logs.Record
		var ts int64
		var trunc int
		if err := rows.Scan(&r.ID, &ts, &r.Project, &r.VMID, &r.TaskID, &r.ExecutionID, &r.Stream, &r.Level, &r.Line, &trunc); err != nil {
			return nil, fmt.Errorf("log store: %w", err)
		}
		r.Time, r.Truncated = time.UnixMicro(ts).UTC(), trunc != 0
		res.Records = append(res.Records, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("log store: %w", err)
	}
	if len(res.Records) > q.Limit {
		res.Records = res.Records[:q.Limit]
		res.Next = logs.Cursor(res.Records[q.Limit-1].ID)
	}
	return res, nil
}

// Prune implements logs.Store.
func (s *Store) Prune(ctx context.Context, before time.Time, keep int64) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.rebind("DELETE FROM log_records WHERE ts < ?"), before.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("log store: prune: %w", err)
	}
	n, _ := res.RowsAffected()
	if keep <= 0 {
		return n, nil
	}
	var edge int64
	err = s.db.QueryRowContext(ctx, s.rebind("SELECT id FROM log_records ORDER BY id DESC LIMIT 1 OFFSET ?"), keep).Scan(&edge)
	if err == sql.ErrNoRows {
		return n, nil
	}
	if err != nil {
		return n, fmt.Errorf("log store: prune: %w", err)
	}
	res, err = s.db.ExecContext(ctx, s.rebind("DELETE FROM log_records WHERE id <= ?"), edge)
	if err != nil {
		return n, fmt.Errorf("log store: prune: %w", err)
	}
	m, _ := res.RowsAffected()
	return n + m, nil
}

// Close implements logs.Store.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() { err = s.db.Close() })
	return err
}

package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/store"
)

const execColumns = `id, project_id, vm_id, task_id, job_id, command, args, shell, exit_code, signal, timed_out, error,
	stdout, stderr, stdout_truncated, stderr_truncated, started_at, completed_at, duration_ms`

func scanExecution(row interface{ Scan(...any) error }) (*store.Execution, error) {
	var e store.Execution
	var args string
	var shell sql.NullBool // NULL: recorded before the column, unknown
	var code sql.NullInt64
	var started int64
	var completed sql.NullInt64
	var stdout, stderr []byte // bytes: output need not be UTF-8
	err := row.Scan(&e.ID, &e.ProjectID, &e.VMID, &e.TaskID, &e.JobID, &e.Command, &args, &shell, &code, &e.Signal,
		&e.TimedOut, &e.Error, &stdout, &stderr, &e.StdoutTruncated, &e.StderrTruncated, &started, &completed, &e.DurationMS)
	if err != nil {
		return nil, err
	}
	e.Stdout, e.Stderr = string(stdout), string(stderr)
	json.Unmarshal([]byte(args), &e.Args)
	if e.Args == nil {
		e.Args = []string{}
	}
	if shell.Valid {
		e.Shell = &shell.Bool
	}
	if code.Valid {
		c := int(code.Int64)
		e.ExitCode = &c
	}
	e.StartedAt, e.CompletedAt = fromMicros(started), fromNullMicros(completed)
	return &e, nil
}

// ExecutionInsert implements store.Store.
func (s *Store) ExecutionInsert(ctx context.Context, p *store.ExecutionInsertParams) (*store.Execution, error) {
	args, _ := json.Marshal(nonNil(p.Args))
	started := p.StartedAt
	if started.IsZero() {
		started = fromMicros(now())
	}
	var shell any // nil: NULL, unknown
	if p.Shell != nil {
		shell = *p.Shell
	}
	// The start is a marker, written without waiting for the disk; the
	// finish waits (see Store.marker).
	e, err := scanExecution(s.marker.QueryRowContext(ctx, `INSERT INTO executions (id, project_id, vm_id, task_id, job_id,
		command, args, shell, started_at) VALUES (?,?,?,?,?,?,?,?,?) RETURNING `+execColumns,
		uuid.Must(uuid.NewV7()).String(), p.ProjectID, p.VMID, p.TaskID, p.JobID, p.Command, string(args), shell, micros(started)))
	return e, s.mapErr(err, "execution")
}

// ExecutionFinish implements store.Store.
func (s *Store) ExecutionFinish(ctx context.Context, p *store.ExecutionFinishParams) (*store.Execution, error) {
	var code any
	if p.ExitCode != nil {
		code = *p.ExitCode
	}
	var e *store.Execution
	err := s.durable(ctx, func(q queryRow) (err error) {
		e, err = scanExecution(q(ctx, `UPDATE executions SET exit_code = ?, signal = ?, timed_out = ?,
			error = ?, stdout = ?, stderr = ?, stdout_truncated = ?, stderr_truncated = ?, completed_at = ?, duration_ms = ?
			WHERE id = ? RETURNING `+execColumns, code, p.Signal, p.TimedOut, p.Error, []byte(p.Stdout), []byte(p.Stderr),
			p.StdoutTruncated, p.StderrTruncated, now(), p.DurationMS, p.ID))
		return err
	})
	return e, s.mapErr(err, "execution "+p.ID)
}

// ExecutionList implements store.Store.
func (s *Store) ExecutionList(ctx context.Context, p *store.ExecutionListParams) ([]*store.Execution, error) {
	q, args := `SELECT `+execColumns+` FROM executions WHERE project_id = ?`, []any{p.ProjectID}
	if p.VMID != "" {
		q += ` AND vm_id = ?`
		args = append(args, p.VMID)
	}
	if p.JobID != "" {
		q += ` AND job_id = ?`
		args = append(args, p.JobID)
	}
	if p.After != "" {
		q += ` AND (started_at, id) > (SELECT started_at, id FROM executions WHERE id = ?)`
		args = append(args, p.After)
	}
	limit := p.Limit
	if limit <= 0 {
		limit = 1000
	}
	return queryAll(ctx, s, "list executions", scanExecution, q+` ORDER BY started_at, id LIMIT ?`, append(args, limit)...)
}

// ExecutionByTask implements store.Store.
func (s *Store) ExecutionByTask(ctx context.Context, projectID, taskID string) (*store.Execution, error) {
	e, err := scanExecution(s.db.QueryRowContext(ctx, `SELECT `+execColumns+` FROM executions
		WHERE task_id = ? AND project_id = ? ORDER BY started_at DESC, id DESC LIMIT 1`, taskID, projectID))
	return e, s.mapErr(err, "execution of task "+taskID)
}

// ExecutionAbandon implements store.Store.
func (s *Store) ExecutionAbandon(ctx context.Context, p *store.ExecutionAbandonParams) (int64, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE executions SET completed_at = ?, error = ?
		WHERE completed_at IS NULL AND started_at < ? AND vm_id IN (SELECT id FROM vms WHERE worker_id = ?)`,
		now(), p.Error, micros(p.StartedBefore), p.WorkerID)
	if err != nil {
		return 0, s.mapErr(err, "abandon executions")
	}
	return res.RowsAffected()
}

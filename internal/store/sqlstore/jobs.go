package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"

	"github.com/aetherium/aetherium/internal/store"
)

const jobColumns = `id, project_id, vm_id, task_id, status, commands, error, created_at, started_at, completed_at`

func scanJob(row interface{ Scan(...any) error }) (*store.Job, error) {
	var j store.Job
	var commands string
	var created int64
	var started, completed sql.NullInt64
	err := row.Scan(&j.ID, &j.ProjectID, &j.VMID, &j.TaskID, &j.Status, &commands, &j.Error, &created, &started, &completed)
	if err != nil {
		return nil, err
	}
	json.Unmarshal([]byte(commands), &j.Commands)
	j.CreatedAt = fromMicros(created)
	j.StartedAt, j.CompletedAt = fromNullMicros(started), fromNullMicros(completed)
	return &j, nil
}

func (s *Store) insertJob(ctx context.Context, tx tx, projectID, taskID string, p *store.JobInsertParams) error {
	commands, _ := json.Marshal(nonNil(p.Commands))
	_, err := tx.ExecContext(ctx, `INSERT INTO jobs (id, project_id, vm_id, task_id, status, commands, created_at)
		VALUES (?,?,?,?,?,?,?)`, p.ID, projectID, p.VMID, taskID, store.JobPending, string(commands), now())
	return s.mapErr(err, "job")
}

// JobGet implements store.Store.
func (s *Store) JobGet(ctx context.Context, p *store.JobGetParams) (*store.Job, error) {
	q, args := `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, []any{p.ID}
	if p.ProjectID != "" {
		q += ` AND project_id = ?`
		args = append(args, p.ProjectID)
	}
	j, err := scanJob(s.db.QueryRowContext(ctx, q, args...))
	return j, s.mapErr(err, "job "+p.ID)
}

// JobUpdate implements store.Store.
func (s *Store) JobUpdate(ctx context.Context, p *store.JobUpdateParams) (*store.Job, error) {
	sets, args := []string{"status = ?"}, []any{p.Status}
	switch p.Status {
	case store.JobRunning:
		sets = append(sets, "started_at = ?")
		args = append(args, now())
	case store.JobSucceeded, store.JobFailed:
		sets = append(sets, "completed_at = ?")
		args = append(args, now())
	}
	if p.Error != nil {
		sets = append(sets, "error = ?")
		args = append(args, *p.Error)
	}
	args = append(args, p.ID)
	j, err := scanJob(s.db.QueryRowContext(ctx, `UPDATE jobs SET `+strings.Join(sets, ", ")+` WHERE id = ? RETURNING `+jobColumns, args...))
	return j, s.mapErr(err, "job "+p.ID)
}

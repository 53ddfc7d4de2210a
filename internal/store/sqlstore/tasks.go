package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
)

const taskColumns = `id, project_id, type, status, priority, vm_id, payload, result, progress, error,
	retry_count, max_retries, timeout_ms, worker_id, created_at, updated_at, started_at, completed_at`

func scanTask(row interface{ Scan(...any) error }) (*store.Task, error) {
	var t store.Task
	var payload, result string
	var created, updated int64
	var started, completed sql.NullInt64
	err := row.Scan(&t.ID, &t.ProjectID, &t.Type, &t.Status, &t.Priority, &t.VMID, &payload, &result, &t.Progress,
		&t.Error, &t.RetryCount, &t.MaxRetries, &t.TimeoutMS, &t.WorkerID, &created, &updated, &started, &completed)
	if err != nil {
		return nil, err
	}
	t.Payload = json.RawMessage(payload)
	if result != "" {
		t.Result = json.RawMessage(result)
	}
	t.CreatedAt, t.UpdatedAt = fromMicros(created), fromMicros(updated)
	t.StartedAt, t.CompletedAt = fromNullMicros(started), fromNullMicros(completed)
	return &t, nil
}

// TaskInsert implements store.Store.
func (s *Store) TaskInsert(ctx context.Context, p *store.TaskInsertParams) (*store.Task, error) {
	id := p.ID
	if id == "" {
		id = uuid.Must(uuid.NewV7()).String()
	}
	payload := string(p.Payload)
	if payload == "" {
		payload = "{}"
	}
	vmID := p.VMID
	if p.VM != nil {
		vmID = p.VM.ID
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, s.mapErr(err, "begin")
	}
	defer tx.Rollback()
	if p.VM != nil || p.Template != nil {
		if err := s.checkQuota(ctx, tx, p.ProjectID, p.VM, p.Template); err != nil {
			return nil, err
		}
	}
	if p.VM != nil && p.VM.WorkerID != "" {
		if err := s.checkWorkerRoom(ctx, tx, p.VM); err != nil {
			return nil, err
		}
	}
	if p.VM != nil {
		if err := s.insertVM(ctx, tx, p.ProjectID, p.VM); err != nil {
			return nil, err
		}
	}
	if p.Job != nil {
		if err := s.insertJob(ctx, tx, p.ProjectID, id, p.Job); err != nil {
			return nil, err
		}
	}
	if p.Template != nil {
		if err := s.insertTemplate(ctx, tx, p.ProjectID, id, p.Template); err != nil {
			return nil, err
		}
	}
	t := now()
	task, err := scanTask(tx.QueryRowContext(ctx, `INSERT INTO tasks (id, project_id, type, status, priority, vm_id,
		payload, max_retries, timeout_ms, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?) RETURNING `+taskColumns,
		id, p.ProjectID, p.Type, store.TaskPending, p.Priority, vmID, payload, p.MaxRetries, p.Timeout.Milliseconds(), t, t))
	if err != nil {
		return nil, s.mapErr(err, "task")
	}
	return task, s.mapErr(tx.Commit(), "commit task")
}

// TaskGet implements store.Store.
func (s *Store) TaskGet(ctx context.Context, p *store.TaskGetParams) (*store.Task, error) {
	q, args := `SELECT `+taskColumns+` FROM tasks WHERE id = ?`, []any{p.ID}
	if p.ProjectID != "" {
		q += ` AND project_id = ?`
		args = append(args, p.ProjectID)
	}
	t, err := scanTask(s.db.QueryRowContext(ctx, q, args...))
	return t, s.mapErr(err, "task "+p.ID)
}

// TaskList implements store.Store.
func (s *Store) TaskList(ctx context.Context, p *store.TaskListParams) ([]*store.Task, error) {
	q, args := `SELECT `+taskColumns+` FROM tasks WHERE 1 = 1`, []any{}
	if p.Status != "" {
		q += ` AND status = ?`
		args = append(args, p.Status)
	}
	if p.ProjectID != "" {
		q += ` AND project_id = ?`
		args = append(args, p.ProjectID)
	}
	if p.After != "" {
		q += ` AND (created_at, id) > (SELECT created_at, id FROM tasks WHERE id = ?)`
		args = append(args, p.After)
	}
	if !p.CreatedBefore.IsZero() {
		q += ` AND created_at < ?`
		args = append(args, micros(p.CreatedBefore))
	}
	if p.WorkerID != "" {
		q += ` AND worker_id = ?`
		args = append(args, p.WorkerID)
	}
	limit := p.Limit
	if limit <= 0 {
		limit = 1000
	}
	return queryAll(ctx, s, "list tasks", scanTask, q+` ORDER BY created_at, id LIMIT ?`, append(args, limit)...)
}

// TaskUpdate implements store.Store.
func (s *Store) TaskUpdate(ctx context.Context, p *store.TaskUpdateParams) (*store.Task, error) {
	t := now()
	sets, args := []string{"status = ?", "updated_at = ?"}, []any{p.Status, t}
	switch p.Status {
	case store.TaskRunning:
		sets = append(sets, "started_at = ?")
		args = append(args, t)
	case store.TaskSucceeded, store.TaskFailed:
		sets = append(sets, "completed_at = ?")
		args = append(args, t)
	}
	for col, v := range map[string]*string{"error": p.Error, "progress": p.Progress, "worker_id": p.WorkerID} {
		if v != nil {
			sets = append(sets, col+" = ?")
			args = append(args, *v)
		}
	}
	if p.Payload != nil {
		sets = append(sets, "payload = ?")
		args = append(args, string(p.Payload))
	}
	if p.Result != nil {
		sets = append(sets, "result = ?")
		args = append(args, string(p.Result))
	}
	if p.RetryCount != nil {
		sets = append(sets, "retry_count = ?")
		args = append(args, *p.RetryCount)
	}
	from := store.Sources(store.TaskTransitions, p.Status)
	if from == nil {
		return nil, errdefs.InvalidArgument("task status %q is not one", p.Status)
	}
	args = append(args, p.ID)
	for _, f := range from {
		args = append(args, f)
	}
	task, err := scanTask(s.db.QueryRowContext(ctx, `UPDATE tasks SET `+strings.Join(sets, ", ")+
		` WHERE id = ? AND status IN (`+placeholders(len(from))+`) RETURNING `+taskColumns, args...))
	if err == sql.ErrNoRows {
		cur, gerr := s.TaskGet(ctx, &store.TaskGetParams{ID: p.ID})
		if gerr != nil {
			return nil, gerr
		}
		return nil, errdefs.Conflict("task %s is %s; it cannot become %s", p.ID, cur.Status, p.Status)
	}
	return task, s.mapErr(err, "task "+p.ID)
}

package sqlstore

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/aetherium/aetherium/internal/store"
)

const templateColumns = `id, project_id, name, status, spec, spec_hash, image, tools_installed, worker_id, task_id,
	error, pool_size, created_at, updated_at`

func scanTemplate(row interface{ Scan(...any) error }) (*store.Template, error) {
	var t store.Template
	var spec, installed string
	var created, updated int64
	err := row.Scan(&t.ID, &t.ProjectID, &t.Name, &t.Status, &spec, &t.SpecHash, &t.Image, &installed, &t.WorkerID,
		&t.TaskID, &t.Error, &t.PoolSize, &created, &updated)
	if err != nil {
		return nil, err
	}
	t.Spec = json.RawMessage(spec)
	json.Unmarshal([]byte(installed), &t.ToolsInstalled)
	if t.ToolsInstalled == nil {
		t.ToolsInstalled = map[string]string{}
	}
	t.CreatedAt, t.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &t, nil
}

func (s *Store) insertTemplate(ctx context.Context, tx tx, projectID, taskID string, p *store.TemplateInsertParams) error {
	t := now()
	_, err := tx.ExecContext(ctx, `INSERT INTO templates (id, project_id, name, status, spec, spec_hash, worker_id,
		task_id, pool_size, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
		p.ID, projectID, p.Name, store.TemplateBuilding, string(p.Spec), p.SpecHash, p.WorkerID, taskID, p.PoolSize, t, t)
	return s.mapErr(err, "template "+p.Name)
}

// TemplateGet implements store.Store.
func (s *Store) TemplateGet(ctx context.Context, p *store.TemplateGetParams) (*store.Template, error) {
	t, err := scanTemplate(s.db.QueryRowContext(ctx, `SELECT `+templateColumns+` FROM templates
		WHERE project_id = ? AND (id = ? OR name = ?)`, p.ProjectID, p.IDOrName, p.IDOrName))
	return t, s.mapErr(err, "template "+p.IDOrName)
}

// TemplateList implements store.Store.
func (s *Store) TemplateList(ctx context.Context, projectID string) ([]*store.Template, error) {
	return queryAll(ctx, s, "list templates", scanTemplate,
		`SELECT `+templateColumns+` FROM templates WHERE project_id = ? OR ? = '*' ORDER BY name`, projectID, projectID)
}

// TemplateUpdate implements store.Store.
func (s *Store) TemplateUpdate(ctx context.Context, p *store.TemplateUpdateParams) (*store.Template, error) {
	sets, args := []string{"status = ?", "updated_at = ?"}, []any{p.Status, now()}
	if p.Error != nil {
		sets, args = append(sets, "error = ?"), append(args, *p.Error)
	}
	if p.Image != nil {
		sets, args = append(sets, "image = ?"), append(args, *p.Image)
	}
	if p.ToolsInstalled != nil {
		b, _ := json.Marshal(p.ToolsInstalled)
		sets, args = append(sets, "tools_installed = ?"), append(args, string(b))
	}
	if p.PoolSize != nil {
		sets, args = append(sets, "pool_size = ?"), append(args, *p.PoolSize)
	}
	args = append(args, p.ID)
	t, err := scanTemplate(s.db.QueryRowContext(ctx, `UPDATE templates SET `+strings.Join(sets, ", ")+
		` WHERE id = ? RETURNING `+templateColumns, args...))
	return t, s.mapErr(err, "template "+p.ID)
}

// TemplateDelete implements store.Store.
func (s *Store) TemplateDelete(ctx context.Context, p *store.TemplateGetParams) error {
	t, err := s.TemplateGet(ctx, p)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `DELETE FROM templates WHERE id = ?`, t.ID)
	return s.mapErr(err, "template "+p.IDOrName)
}

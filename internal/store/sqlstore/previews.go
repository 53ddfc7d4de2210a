package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
)

const previewTokenColumns = `id, project_id, vm_id, port, hash, created_at, expires_at`

func scanPreviewToken(row interface{ Scan(...any) error }) (*store.PreviewToken, error) {
	var t store.PreviewToken
	var created, expires int64
	if err := row.Scan(&t.ID, &t.ProjectID, &t.VMID, &t.Port, &t.Hash, &created, &expires); err != nil {
		return nil, err
	}
	t.CreatedAt, t.ExpiresAt = fromMicros(created), fromMicros(expires)
	return &t, nil
}

// PreviewTokenInsert implements store.Store. The sandbox's existence is
// checked in the INSERT itself, so a token never outlives a sandbox that
// was being deleted at the same moment by more than VMUpdate's DELETE.
func (s *Store) PreviewTokenInsert(ctx context.Context, p *store.PreviewTokenInsertParams) (*store.PreviewToken, error) {
	if p.ID == "" || p.Hash == "" || p.VMID == "" {
		return nil, errdefs.InvalidArgument("preview token: ID, hash and sandbox are required")
	}
	t, err := scanPreviewToken(s.db.QueryRowContext(ctx, `INSERT INTO preview_tokens (id, project_id, vm_id, port, hash, created_at, expires_at)
		SELECT ?,?,?,?,?,?,? WHERE EXISTS (SELECT 1 FROM vms WHERE id = ? AND project_id = ? AND status <> 'deleted')
		RETURNING `+previewTokenColumns, p.ID, p.ProjectID, p.VMID, p.Port, p.Hash, now(), micros(p.ExpiresAt), p.VMID, p.ProjectID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errdefs.NotFound("sandbox %s not found", p.VMID)
	}
	return t, s.mapErr(err, "preview token "+p.ID)
}

// PreviewTokenByHash implements store.Store.
func (s *Store) PreviewTokenByHash(ctx context.Context, hash string) (*store.PreviewToken, error) {
	t, err := scanPreviewToken(s.db.QueryRowContext(ctx, `SELECT `+previewTokenColumns+` FROM preview_tokens WHERE hash = ?`, hash))
	return t, s.mapErr(err, "preview token")
}

// PreviewTokenList implements store.Store.
func (s *Store) PreviewTokenList(ctx context.Context, projectID, vmID string) ([]*store.PreviewToken, error) {
	return queryAll(ctx, s, "list preview tokens", scanPreviewToken, `SELECT `+previewTokenColumns+` FROM preview_tokens
		WHERE project_id = ? AND vm_id = ? ORDER BY created_at DESC, id`, projectID, vmID)
}

// PreviewTokenDelete implements store.Store.
func (s *Store) PreviewTokenDelete(ctx context.Context, projectID, vmID, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM preview_tokens WHERE id = ? AND project_id = ? AND vm_id = ?`, id, projectID, vmID)
	if err != nil {
		return s.mapErr(err, "preview token "+id)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errdefs.NotFound("preview token %s not found", id)
	}
	return nil
}

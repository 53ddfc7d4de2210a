package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
)

const projectColumns = `id, name, max_sandboxes, max_vcpus, max_memory_mb, max_templates, max_pool_size, max_execs, created_at`

func scanProject(row interface{ Scan(...any) error }) (*store.Project, error) {
	var p store.Project
	var created int64
	q := &p.Quota
	if err := row.Scan(&p.ID, &p.Name, &q.Sandboxes, &q.VCPUs, &q.MemoryMB, &q.Templates, &q.PoolSize, &q.Execs, &created); err != nil {
		return nil, err
	}
	p.CreatedAt = fromMicros(created)
	return &p, nil
}

// ProjectInsert implements store.Store.
func (s *Store) ProjectInsert(ctx context.Context, p *store.ProjectInsertParams) (*store.Project, error) {
	id := p.ID
	if id == "" {
		id = uuid.NewString()
	}
	q := p.Quota
	proj, err := scanProject(s.db.QueryRowContext(ctx, `INSERT INTO projects (id, name, max_sandboxes, max_vcpus, max_memory_mb,
		max_templates, max_pool_size, max_execs, created_at) VALUES (?,?,?,?,?,?,?,?,?) RETURNING `+projectColumns,
		id, p.Name, q.Sandboxes, q.VCPUs, q.MemoryMB, q.Templates, q.PoolSize, q.Execs, now()))
	return proj, s.mapErr(err, "project "+p.Name)
}

// ProjectGet implements store.Store.
func (s *Store) ProjectGet(ctx context.Context, idOrName string) (*store.Project, error) {
	p, err := scanProject(s.db.QueryRowContext(ctx, `SELECT `+projectColumns+` FROM projects WHERE id = ? OR name = ?
		ORDER BY CASE WHEN id = ? THEN 0 ELSE 1 END LIMIT 1`, idOrName, idOrName, idOrName))
	return p, s.mapErr(err, "project "+idOrName)
}

// ProjectList implements store.Store.
func (s *Store) ProjectList(ctx context.Context) ([]*store.Project, error) {
	return queryAll(ctx, s, "list projects", scanProject, `SELECT `+projectColumns+` FROM projects ORDER BY name`)
}

// ProjectUpdate implements store.Store.
func (s *Store) ProjectUpdate(ctx context.Context, p *store.ProjectUpdateParams) (*store.Project, error) {
	q := p.Quota
	proj, err := scanProject(s.db.QueryRowContext(ctx, `UPDATE projects SET max_sandboxes = ?, max_vcpus = ?, max_memory_mb = ?,
		max_templates = ?, max_pool_size = ?, max_execs = ? WHERE id = ? RETURNING `+projectColumns,
		q.Sandboxes, q.VCPUs, q.MemoryMB, q.Templates, q.PoolSize, q.Execs, p.ID))
	return proj, s.mapErr(err, "project "+p.ID)
}

// ProjectDelete implements store.Store.
func (s *Store) ProjectDelete(ctx context.Context, id string) error {
	if id == store.DefaultProjectID {
		return errdefs.FailedPrecondition("the default project cannot be deleted")
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return s.mapErr(err, "begin")
	}
	defer tx.Rollback()
	var vms, templates int
	err = tx.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM vms WHERE project_id = ? AND status <> 'deleted'),
		(SELECT COUNT(*) FROM templates WHERE project_id = ?)`, id, id).Scan(&vms, &templates)
	if err != nil {
		return s.mapErr(err, "project "+id)
	}
	if vms > 0 || templates > 0 {
		return errdefs.FailedPrecondition("project %s still has %d sandboxes and %d templates; delete them first", id, vms, templates)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM api_keys WHERE project_id = ?`, id); err != nil {
		return s.mapErr(err, "project keys")
	}
	// History (deleted sandboxes, tasks, jobs, executions) keeps its rows;
	// the project row stays referenced, so it is only renamed away.
	res, err := tx.ExecContext(ctx, `UPDATE projects SET name = ? WHERE id = ? AND name NOT LIKE '\_deleted-%' ESCAPE '\'`,
		"_deleted-"+id, id)
	if err != nil {
		return s.mapErr(err, "project "+id)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errdefs.NotFound("project %s not found", id)
	}
	return s.mapErr(tx.Commit(), "commit project delete")
}

const apiKeyColumns = `id, project_id, name, prefix, hash, role, created_at, expires_at, revoked_at`

func scanAPIKey(row interface{ Scan(...any) error }) (*store.APIKey, error) {
	var k store.APIKey
	var created int64
	var expires, revoked sql.NullInt64
	if err := row.Scan(&k.ID, &k.ProjectID, &k.Name, &k.Prefix, &k.Hash, &k.Role, &created, &expires, &revoked); err != nil {
		return nil, err
	}
	k.CreatedAt, k.ExpiresAt, k.RevokedAt = fromMicros(created), fromNullMicros(expires), fromNullMicros(revoked)
	return &k, nil
}

// APIKeyInsert implements store.Store.
func (s *Store) APIKeyInsert(ctx context.Context, p *store.APIKeyInsertParams) (*store.APIKey, error) {
	var expires sql.NullInt64
	if p.ExpiresAt != nil {
		expires = sql.NullInt64{Int64: micros(*p.ExpiresAt), Valid: true}
	}
	k, err := scanAPIKey(s.db.QueryRowContext(ctx, `INSERT INTO api_keys (id, project_id, name, prefix, hash, role, created_at, expires_at)
		SELECT ?,?,?,?,?,?,?,? WHERE EXISTS (SELECT 1 FROM projects WHERE id = ? AND name NOT LIKE '\_deleted-%' ESCAPE '\')
		RETURNING `+apiKeyColumns, p.ID, p.ProjectID, p.Name, p.Prefix, p.Hash, p.Role, now(), expires, p.ProjectID))
	if err == sql.ErrNoRows {
		return nil, errdefs.NotFound("project %s not found", p.ProjectID)
	}
	return k, s.mapErr(err, "api key "+p.Prefix)
}

// APIKeyByPrefix implements store.Store.
func (s *Store) APIKeyByPrefix(ctx context.Context, prefix string) (*store.APIKey, error) {
	k, err := scanAPIKey(s.db.QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE prefix = ?`, prefix))
	return k, s.mapErr(err, "api key "+prefix)
}

// APIKeyList implements store.Store.
func (s *Store) APIKeyList(ctx context.Context, projectID string) ([]*store.APIKey, error) {
	return queryAll(ctx, s, "list api keys", scanAPIKey, `SELECT `+apiKeyColumns+` FROM api_keys
		WHERE ? = '' OR project_id = ? ORDER BY created_at DESC, id`, projectID, projectID)
}

// APIKeyRevoke implements store.Store.
func (s *Store) APIKeyRevoke(ctx context.Context, projectID, idOrPrefix string) (*store.APIKey, error) {
	k, err := scanAPIKey(s.db.QueryRowContext(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?)
		WHERE (id = ? OR prefix = ?) AND (? = '' OR project_id = ?) RETURNING `+apiKeyColumns,
		now(), idOrPrefix, idOrPrefix, projectID, projectID))
	return k, s.mapErr(err, "api key "+idOrPrefix)
}

// APIKeyCount implements store.Store.
func (s *Store) APIKeyCount(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)`,
		now()).Scan(&n)
	return n, s.mapErr(err, "count api keys")
}

// auditLinger is how long an audit entry waits to be committed with
// another durable write (see Store.durableWithin): the auditor writes it
// after its request was answered, so nobody waits on it, and with execs
// running the next one's finish commits it.
const auditLinger = 100 * time.Millisecond

// AuditInsert implements store.Store.
func (s *Store) AuditInsert(ctx context.Context, entries ...*store.AuditInsertParams) error {
	err := s.durableWithin(ctx, auditLinger, func(q queryRow) error {
		for _, p := range entries {
			var id int64
			if err := q(ctx, `INSERT INTO audit_log (at, key_prefix, project_id, action, object, status) VALUES (?,?,?,?,?,?) RETURNING id`,
				now(), p.KeyPrefix, p.ProjectID, p.Action, p.Object, p.Status).Scan(&id); err != nil {
				return err
			}
		}
		return nil
	})
	return s.mapErr(err, "audit entry")
}

func scanAudit(row interface{ Scan(...any) error }) (*store.AuditEntry, error) {
	var e store.AuditEntry
	var at int64
	if err := row.Scan(&e.ID, &at, &e.KeyPrefix, &e.ProjectID, &e.Action, &e.Object, &e.Status); err != nil {
		return nil, err
	}
	e.At = fromMicros(at)
	return &e, nil
}

// AuditList implements store.Store.
func (s *Store) AuditList(ctx context.Context, p *store.AuditListParams) ([]*store.AuditEntry, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = 100
	}
	return queryAll(ctx, s, "list audit entries", scanAudit, `SELECT id, at, key_prefix, project_id, action, object, status
		FROM audit_log WHERE (? = '' OR project_id = ?) AND (? = 0 OR id < ?) ORDER BY id DESC LIMIT ?`,
		p.ProjectID, p.ProjectID, p.Before, p.Before, limit)
}

// checkQuota refuses a new sandbox (vm) or template that would take the
// project past its quota. It runs inside the inserting transaction, after
// locking the project row, so concurrent inserts cannot overshoot.
func (s *Store) checkQuota(ctx context.Context, t tx, projectID string, vm *store.VMInsertParams, tpl *store.TemplateInsertParams) error {
	proj, err := scanProject(t.QueryRowContext(ctx, `SELECT `+projectColumns+` FROM projects WHERE id = ?`+t.d.ForUpdate, projectID))
	if err != nil {
		return s.mapErr(err, "project "+projectID)
	}
	q := proj.Quota
	var n, vcpus, mem, templates, pool int
	err = t.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM vms WHERE project_id = ? AND status <> 'deleted' AND `+notPool+`),
		(SELECT COALESCE(SUM(vcpus), 0) FROM vms WHERE project_id = ? AND status <> 'deleted' AND `+notPool+`),
		(SELECT COALESCE(SUM(memory_mb), 0) FROM vms WHERE project_id = ? AND status <> 'deleted' AND `+notPool+`),
		(SELECT COUNT(*) FROM templates WHERE project_id = ?),
		(SELECT COALESCE(SUM(pool_size), 0) FROM templates WHERE project_id = ?)`,
		projectID, projectID, projectID, projectID, projectID).Scan(&n, &vcpus, &mem, &templates, &pool)
	if err != nil {
		return s.mapErr(err, "project usage")
	}
	over := func(limit, used, add int, what string) error {
		if limit > 0 && add > 0 && used+add > limit {
			return errdefs.QuotaExceeded("project %s: quota of %d %s reached (%d in use, %d asked); delete some or ask an admin to raise it",
				proj.Name, limit, what, used, add)
		}
		return nil
	}
	if vm != nil && !strings.HasPrefix(vm.Name, store.PoolNamePrefix) {
		if err := over(q.Sandboxes, n, 1, "sandboxes"); err != nil {
			return err
		}
		if err := over(q.VCPUs, vcpus, vm.VCPUs, "vCPUs"); err != nil {
			return err
		}
		if err := over(q.MemoryMB, mem, vm.MemoryMB, "MiB of memory"); err != nil {
			return err
		}
	}
	if tpl != nil {
		if err := over(q.Templates, templates, 1, "templates"); err != nil {
			return err
		}
		if err := over(q.PoolSize, pool, tpl.PoolSize, "warm-pool sandboxes"); err != nil {
			return err
		}
	}
	return nil
}

// notPool leaves out warm-pool sandboxes (named with store.PoolNamePrefix):
// they count toward the pool-size quota, until claimed.
const notPool = `name NOT LIKE '\_pool-%' ESCAPE '\'`

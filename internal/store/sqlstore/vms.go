package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
)

const vmColumns = `id, project_id, name, status, runtime, runtime_id, worker_id, image, template, vcpus, memory_mb,
	additional_tools, tool_versions, tools_installed, expires_at, idle_timeout_s, last_active_at, on_expire,
	error, ip_address, egress, created_at, updated_at`

func scanVM(row interface{ Scan(...any) error }) (*store.VM, error) {
	var vm store.VM
	var tools, versions, installed string
	var created, updated int64
	var expires, active sql.NullInt64
	err := row.Scan(&vm.ID, &vm.ProjectID, &vm.Name, &vm.Status, &vm.Runtime, &vm.RuntimeID, &vm.WorkerID,
		&vm.Image, &vm.Template, &vm.VCPUs, &vm.MemoryMB, &tools, &versions, &installed, &expires, &vm.IdleTimeoutS,
		&active, &vm.OnExpire, &vm.Error, &vm.IPAddress, &vm.Egress, &created, &updated)
	if err != nil {
		return nil, err
	}
	json.Unmarshal([]byte(tools), &vm.AdditionalTools)
	json.Unmarshal([]byte(versions), &vm.ToolVersions)
	json.Unmarshal([]byte(installed), &vm.ToolsInstalled)
	if vm.ToolsInstalled == nil {
		vm.ToolsInstalled = map[string]string{}
	}
	if vm.AdditionalTools == nil {
		vm.AdditionalTools = []string{}
	}
	if vm.ToolVersions == nil {
		vm.ToolVersions = map[string]string{}
	}
	vm.CreatedAt, vm.UpdatedAt = fromMicros(created), fromMicros(updated)
	vm.ExpiresAt, vm.LastActiveAt = fromNullMicros(expires), fromNullMicros(active)
	return &vm, nil
}

func (s *Store) insertVM(ctx context.Context, tx tx, projectID string, p *store.VMInsertParams) error {
	tools, _ := json.Marshal(nonNil(p.AdditionalTools))
	versions, _ := json.Marshal(nonNilMap(p.ToolVersions))
	t := now()
	onExpire := p.OnExpire
	if onExpire == "" {
		onExpire = store.ExpireDelete
	}
	var expires any
	if p.ExpiresAt != nil {
		expires = micros(*p.ExpiresAt)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO vms (id, project_id, name, status, runtime, worker_id, image, template,
		vcpus, memory_mb, additional_tools, tool_versions, expires_at, idle_timeout_s, last_active_at, on_expire,
		egress, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		p.ID, projectID, p.Name, store.VMCreating, p.Runtime, p.WorkerID, p.Image, p.Template, p.VCPUs, p.MemoryMB,
		string(tools), string(versions), expires, p.IdleTimeoutS, t, onExpire, p.Egress, t, t)
	if err != nil && strings.Contains(err.Error(), "vms.project_id, vms.name") {
		return s.mapErr(err, "sandbox named "+p.Name)
	}
	return s.mapErr(err, "sandbox")
}

// VMGet implements store.Store.
func (s *Store) VMGet(ctx context.Context, p *store.VMGetParams) (*store.VM, error) {
	if p.ProjectID == store.AllProjects {
		vm, err := scanVM(s.db.QueryRowContext(ctx, `SELECT `+vmColumns+` FROM vms WHERE id = ?`, p.IDOrName))
		return vm, s.mapErr(err, "sandbox "+p.IDOrName)
	}
	vm, err := scanVM(s.db.QueryRowContext(ctx, `SELECT `+vmColumns+` FROM vms WHERE id = ? AND project_id = ?`,
		p.IDOrName, p.ProjectID))
	if err == sql.ErrNoRows {
		vm, err = scanVM(s.db.QueryRowContext(ctx, `SELECT `+vmColumns+` FROM vms
			WHERE name = ? AND project_id = ? AND status <> 'deleted'`, p.IDOrName, p.ProjectID))
	}
	return vm, s.mapErr(err, "sandbox "+p.IDOrName)
}

// activityOnly reports whether p records activity and nothing else: the
// exec path's touch of a sandbox with an idle timeout, twice per exec. It
// is written without waiting for the disk (see Store.marker): a power loss
// may roll last_active_at back to an earlier touch, so the sandbox may
// expire early, as after a failed touch; a crash of aetherd keeps it.
func activityOnly(p *store.VMUpdateParams) bool {
	return p.LastActiveAt != nil && p.Error == nil && p.ExpiresAt == nil && p.IPAddress == nil && p.RuntimeID == nil &&
		p.Status == nil && p.ToolsInstalled == nil && p.WorkerID == nil
}

// VMList implements store.Store.
func (s *Store) VMList(ctx context.Context, p *store.VMListParams) ([]*store.VM, error) {
	// One project's rows are read in order from vms_project_created; '*'
	// (every project: the reconciler, admins) reads them all.
	q := `SELECT ` + vmColumns + ` FROM vms WHERE project_id = ?`
	args := []any{p.ProjectID}
	if p.ProjectID == "*" {
		q, args = `SELECT `+vmColumns+` FROM vms WHERE 1 = 1`, nil
	}
	if !p.IncludeDeleted {
		q += ` AND status <> 'deleted'`
	}
	// An exact prefix test: LIKE would read the prefix's '_' as a wildcard.
	pooled := `substr(name, 1, ` + strconv.Itoa(len(store.PoolNamePrefix)) + `) = '` + store.PoolNamePrefix + `'`
	if p.Pooled {
		q += ` AND ` + pooled
	} else {
		q += ` AND NOT ` + pooled
	}
	if p.WorkerID != "" {
		q += ` AND worker_id = ?`
		args = append(args, p.WorkerID)
	}
	if !p.ExpiredAt.IsZero() {
		at := micros(p.ExpiredAt)
		q += ` AND status = 'running' AND (expires_at <= ? OR
			(idle_timeout_s > 0 AND last_active_at <= ? - idle_timeout_s * CAST(1000000 AS BIGINT)))`
		args = append(args, at, at)
	}
	if p.After != "" {
		q += ` AND (created_at, id) > (SELECT created_at, id FROM vms WHERE id = ?)`
		args = append(args, p.After)
	}
	q += ` ORDER BY created_at, id`
	if p.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, p.Limit)
	}
	return queryAll(ctx, s, "list sandboxes", scanVM, q, args...)
}

// VMUpdate implements store.Store.
func (s *Store) VMUpdate(ctx context.Context, p *store.VMUpdateParams) (*store.VM, error) {
	sets, args := []string{"updated_at = ?"}, []any{now()}
	add := func(col string, v *string) {
		if v != nil {
			sets = append(sets, col+" = ?")
			args = append(args, *v)
		}
	}
	add("status", p.Status)
	add("runtime_id", p.RuntimeID)
	add("worker_id", p.WorkerID)
	add("error", p.Error)
	add("ip_address", p.IPAddress)
	if p.ExpiresAt != nil {
		sets = append(sets, "expires_at = ?")
		if p.ExpiresAt.IsZero() {
			args = append(args, nil)
		} else {
			args = append(args, micros(*p.ExpiresAt))
		}
	}
	if p.LastActiveAt != nil {
		sets, args = append(sets, "last_active_at = ?"), append(args, micros(*p.LastActiveAt))
	}
	if p.ToolsInstalled != nil {
		b, _ := json.Marshal(p.ToolsInstalled)
		installed := string(b)
		add("tools_installed", &installed)
	}
	args = append(args, p.ID)
	where := ` WHERE id = ?`
	if p.Status != nil {
		from := store.Sources(store.VMTransitions, *p.Status)
		if from == nil {
			return nil, errdefs.InvalidArgument("sandbox status %q is not one", *p.Status)
		}
		if len(p.IfStatus) > 0 {
			from = slices.DeleteFunc(from, func(f string) bool { return !slices.Contains(p.IfStatus, f) })
		}
		if len(from) == 0 {
			return nil, errdefs.Conflict("sandbox %s cannot become %s from %v", p.ID, *p.Status, p.IfStatus)
		}
		where += ` AND status IN (` + placeholders(len(from)) + `)`
		for _, f := range from {
			args = append(args, f)
		}
	}
	pool := s.db
	if activityOnly(p) {
		pool = s.marker
	}
	vm, err := scanVM(pool.QueryRowContext(ctx, `UPDATE vms SET `+strings.Join(sets, ", ")+where+` RETURNING `+vmColumns, args...))
	if errors.Is(err, sql.ErrNoRows) && p.Status != nil {
		var cur string
		if gerr := s.db.QueryRowContext(ctx, `SELECT status FROM vms WHERE id = ?`, p.ID).Scan(&cur); gerr != nil {
			return nil, s.mapErr(gerr, "sandbox "+p.ID)
		}
		return nil, errdefs.Conflict("sandbox %s is %s; it cannot become %s", p.ID, cur, *p.Status)
	}
	if err == nil && vm.Status == store.VMDeleted { // a deleted sandbox's preview tokens go with it
		if _, derr := s.db.ExecContext(ctx, `DELETE FROM preview_tokens WHERE vm_id = ?`, vm.ID); derr != nil {
			return nil, s.mapErr(derr, "sandbox "+p.ID+" preview tokens")
		}
	}
	return vm, s.mapErr(err, "sandbox "+p.ID)
}

// placeholders is n comma-separated bind parameters.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// VMClaimPooled implements store.Store. The outer status check makes the
// claim safe under concurrency on both databases: a second claimer of the
// same row finds it no longer pooled and updates nothing.
func (s *Store) VMClaimPooled(ctx context.Context, p *store.VMClaimParams) (*store.VM, error) {
	onExpire := p.OnExpire
	if onExpire == "" {
		onExpire = store.ExpireDelete
	}
	var expires any
	if p.ExpiresAt != nil {
		expires = micros(*p.ExpiresAt)
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, s.mapErr(err, "begin")
	}
	defer tx.Rollback()
	// The claimed sandbox becomes the user's: it must fit the project's
	// quota. Claims of one project take turns (the project row's lock), so
	// two never pick the same sandbox.
	var locked string
	if err := tx.QueryRowContext(ctx, `SELECT id FROM projects WHERE id = ?`+tx.d.ForUpdate, p.ProjectID).Scan(&locked); err != nil {
		return nil, s.mapErr(err, "project "+p.ProjectID)
	}
	var id string
	var vcpus, mem int
	err = tx.QueryRowContext(ctx, `SELECT id, vcpus, memory_mb FROM vms WHERE status = 'pooled' AND template = ? AND project_id = ?
		ORDER BY created_at, id LIMIT 1`, p.TemplateID, p.ProjectID).Scan(&id, &vcpus, &mem)
	if err != nil {
		return nil, s.mapErr(err, "pooled sandbox of template "+p.TemplateID)
	}
	if err := s.checkQuota(ctx, tx, p.ProjectID, &store.VMInsertParams{Name: p.Name, VCPUs: vcpus, MemoryMB: mem}, nil); err != nil {
		return nil, err
	}
	t := now()
	vm, err := scanVM(tx.QueryRowContext(ctx, `UPDATE vms SET name = ?, status = ?, expires_at = ?, idle_timeout_s = ?,
		on_expire = ?, last_active_at = ?, created_at = ?, updated_at = ?
		WHERE status = 'pooled' AND id = ? RETURNING `+vmColumns, p.Name, store.VMRunning, expires, p.IdleTimeoutS, onExpire, t, t, t, id))
	if err != nil && s.db.d.IsUnique(err) {
		return nil, s.mapErr(err, "sandbox named "+p.Name)
	}
	if err != nil {
		return nil, s.mapErr(err, "pooled sandbox of template "+p.TemplateID)
	}
	return vm, s.mapErr(tx.Commit(), "commit claim")
}

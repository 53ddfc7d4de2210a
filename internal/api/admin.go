package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/internal/auth"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
)

// The admin routes: projects, keys and the audit log. guard lets only admin
// keys in.

func projectOut(p *store.Project) *apiv1.Project {
	return &apiv1.Project{ID: p.ID, Name: p.Name, Quota: apiv1.Quota(p.Quota), CreatedAt: p.CreatedAt}
}

func keyOut(k *store.APIKey) *apiv1.APIKey {
	return &apiv1.APIKey{ID: k.ID, ProjectID: k.ProjectID, Name: k.Name, Prefix: k.Prefix, Role: k.Role,
		CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt}
}

func auditOut(e *store.AuditEntry) *apiv1.AuditEntry { return (*apiv1.AuditEntry)(e) }

func validateQuota(q apiv1.Quota) error {
	if q.Sandboxes < 0 || q.VCPUs < 0 || q.MemoryMB < 0 || q.Templates < 0 || q.PoolSize < 0 || q.Execs < 0 {
		return errdefs.InvalidArgument("quota: limits must be 0 (no limit) or positive")
	}
	return nil
}

func (s *Server) handleProjectCreate(w http.ResponseWriter, r *http.Request) {
	var req apiv1.ProjectRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if !nameRE.MatchString(req.Name) {
		s.writeError(w, r, errdefs.InvalidArgument("name: %q must be a DNS label", req.Name))
		return
	}
	if err := validateQuota(req.Quota); err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.store.ProjectInsert(r.Context(), &store.ProjectInsertParams{ID: uuid.NewString(), Name: req.Name, Quota: store.Quota(req.Quota)})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, projectOut(p))
}

func (s *Server) handleProjectList(w http.ResponseWriter, r *http.Request) {
	list, err := s.store.ProjectList(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiv1.ProjectList{Projects: each(list, projectOut)})
}

func (s *Server) handleProjectGet(w http.ResponseWriter, r *http.Request) {
	p, err := s.store.ProjectGet(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, projectOut(p))
}

// handleProjectQuota replaces a project's quota. Lowering it below what the
// project holds refuses new work until it is back under, and removes nothing.
func (s *Server) handleProjectQuota(w http.ResponseWriter, r *http.Request) {
	var q apiv1.Quota
	if err := decodeJSON(w, r, &q); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := validateQuota(q); err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.store.ProjectGet(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if p, err = s.store.ProjectUpdate(r.Context(), &store.ProjectUpdateParams{ID: p.ID, Quota: store.Quota(q)}); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.quotas.forget(p.ID)
	writeJSON(w, http.StatusOK, projectOut(p))
}

// handleProjectDelete removes an empty project and its keys (409 while it
// has sandboxes or templates).
func (s *Server) handleProjectDelete(w http.ResponseWriter, r *http.Request) {
	p, err := s.store.ProjectGet(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	keys, err := s.store.APIKeyList(r.Context(), p.ID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.store.ProjectDelete(r.Context(), p.ID); err != nil {
		s.writeError(w, r, err)
		return
	}
	for _, k := range keys {
		s.auth.Forget(k.Prefix)
	}
	s.quotas.forget(p.ID)
	w.WriteHeader(http.StatusNoContent)
}

// maxKeyTTL bounds ttl_seconds.
const maxKeyTTL = 10 * 365 * 24 * time.Hour

// handleKeyCreate makes a key and returns it, the one time it is shown.
func (s *Server) handleKeyCreate(w http.ResponseWriter, r *http.Request) {
	var req apiv1.KeyRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Role == "" {
		req.Role = store.RoleMember
	}
	switch {
	case req.Role != store.RoleAdmin && req.Role != store.RoleMember:
		s.writeError(w, r, errdefs.InvalidArgument("role: %q is not admin or member", req.Role))
		return
	case req.TTLSeconds < 0 || time.Duration(req.TTLSeconds)*time.Second > maxKeyTTL:
		s.writeError(w, r, errdefs.InvalidArgument("ttl_seconds: must be between 0 (never expires) and %d", int64(maxKeyTTL.Seconds())))
		return
	case len(req.Name) > 200:
		s.writeError(w, r, errdefs.InvalidArgument("name: longer than 200 bytes"))
		return
	}
	projectID := project(r)
	if req.Project != "" {
		p, err := s.store.ProjectGet(r.Context(), req.Project)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		projectID = p.ID
	}
	var expires *time.Time
	if req.TTLSeconds > 0 {
		t := time.Now().Add(time.Duration(req.TTLSeconds) * time.Second)
		expires = &t
	}
	key, prefix, hash := auth.NewKey()
	k, err := s.store.APIKeyInsert(r.Context(), &store.APIKeyInsertParams{ID: uuid.NewString(), ProjectID: projectID,
		Name: req.Name, Prefix: prefix, Hash: hash, Role: req.Role, ExpiresAt: expires})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, apiv1.KeyCreated{APIKey: *keyOut(k), Key: key})
}

// handleKeyList lists keys: every project's, or with ?project= one's.
func (s *Server) handleKeyList(w http.ResponseWriter, r *http.Request) {
	projectID := ""
	if v := r.URL.Query().Get("project"); v != "" {
		p, err := s.store.ProjectGet(r.Context(), v)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		projectID = p.ID
	}
	list, err := s.store.APIKeyList(r.Context(), projectID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiv1.APIKeyList{Keys: each(list, keyOut)})
}

// handleKeyRevoke revokes a key by ID or prefix; this process refuses it from
// its next request, others within Config.AuthCacheTTL.
func (s *Server) handleKeyRevoke(w http.ResponseWriter, r *http.Request) {
	k, err := s.store.APIKeyRevoke(r.Context(), "", r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.auth.Forget(k.Prefix)
	writeJSON(w, http.StatusOK, keyOut(k))
}

// handleAuditList pages through the audit log, newest first: ?limit=
// (default 100, at most 1000), ?before= (an entry ID: the page after it),
// ?project= (ID or name; default every project).
func (s *Server) handleAuditList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := pageLimit(q.Get("limit"), defaultPage, maxPage)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	params := &store.AuditListParams{Limit: limit}
	if v := q.Get("before"); v != "" {
		if params.Before, err = strconv.ParseInt(v, 10, 64); err != nil || params.Before < 0 {
			s.writeError(w, r, errdefs.InvalidArgument("before: %q is not an entry ID", v))
			return
		}
	}
	if v := q.Get("project"); v != "" {
		p, err := s.store.ProjectGet(r.Context(), v)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		params.ProjectID = p.ID
	}
	list, err := s.store.AuditList(r.Context(), params)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := apiv1.AuditList{Entries: each(list, auditOut)}
	if len(list) == limit {
		out.Next = list[len(list)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
}

// Page sizes: ?limit= of lists. Executions carry up to twice
// executions.max_output_bytes each, so their pages are smaller.
const (
	defaultPage, maxPage         = 100, 1000
	defaultExecPage, maxExecPage = 20, 100
)

// pageLimit parses ?limit=: def when empty, else 1..max.
func pageLimit(v string, def, max int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, errdefs.InvalidArgument("limit: %q must be between 1 and %d", v, max)
	}
	return n, nil
}

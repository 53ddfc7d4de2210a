package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/aetherium/aetherium/apiv1"
)

// The admin calls: projects, keys and the audit log. They need an admin key.

// CreateProject creates a project with a quota (zero fields: no limit).
func (c *Client) CreateProject(ctx context.Context, req *apiv1.ProjectRequest) (*apiv1.Project, error) {
	var p apiv1.Project
	return &p, c.doJSON(ctx, http.MethodPost, c.prefix+"/projects", req, &p)
}

// ListProjects lists every project by name.
func (c *Client) ListProjects(ctx context.Context) ([]*apiv1.Project, error) {
	var out apiv1.ProjectList
	return out.Projects, c.doJSON(ctx, http.MethodGet, c.prefix+"/projects", nil, &out)
}

// GetProject returns a project by ID or name.
func (c *Client) GetProject(ctx context.Context, idOrName string) (*apiv1.Project, error) {
	var p apiv1.Project
	return &p, c.doJSON(ctx, http.MethodGet, c.prefix+"/projects/"+url.PathEscape(idOrName), nil, &p)
}

// SetQuota replaces a project's quota.
func (c *Client) SetQuota(ctx context.Context, project string, q *apiv1.Quota) (*apiv1.Project, error) {
	var p apiv1.Project
	return &p, c.doJSON(ctx, http.MethodPut, c.prefix+"/projects/"+url.PathEscape(project)+"/quota", q, &p)
}

// DeleteProject deletes an empty project and its keys.
func (c *Client) DeleteProject(ctx context.Context, project string) error {
	return c.doJSON(ctx, http.MethodDelete, c.prefix+"/projects/"+url.PathEscape(project), nil, nil)
}

// CreateKey creates an API key; the response holds it, the only time it
// is shown.
func (c *Client) CreateKey(ctx context.Context, req *apiv1.KeyRequest) (*apiv1.KeyCreated, error) {
	var k apiv1.KeyCreated
	return &k, c.doJSON(ctx, http.MethodPost, c.prefix+"/keys", req, &k)
}

// ListKeys lists keys, newest first: every project's, or project's.
func (c *Client) ListKeys(ctx context.Context, project string) ([]*apiv1.APIKey, error) {
	var out apiv1.APIKeyList
	return out.Keys, c.doJSON(ctx, http.MethodGet, c.prefix+"/keys?project="+url.QueryEscape(project), nil, &out)
}

// RevokeKey revokes a key by ID or prefix.
func (c *Client) RevokeKey(ctx context.Context, idOrPrefix string) (*apiv1.APIKey, error) {
	var k apiv1.APIKey
	return &k, c.doJSON(ctx, http.MethodDelete, c.prefix+"/keys/"+url.PathEscape(idOrPrefix), nil, &k)
}

// Audit returns a page of the audit log, newest first: entries older than
// before (0: the newest), of project (empty: all).
func (c *Client) Audit(ctx context.Context, project string, before int64, limit int) (*apiv1.AuditList, error) {
	q := url.Values{}
	if project != "" {
		q.Set("project", project)
	}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out apiv1.AuditList
	return &out, c.doJSON(ctx, http.MethodGet, c.prefix+"/audit?"+q.Encode(), nil, &out)
}

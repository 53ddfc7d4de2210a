package api

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/aetherium/aetherium/internal/dashboard"
)

// access is who may call a route.
type access int

const (
	// open routes need no credentials: /health, the dashboard's pages and
	// its login.
	open access = iota
	// scrape routes need an admin key or the metrics token: /metrics.
	scrape
	// internal routes need the cluster's internal token.
	internal
	// member routes need a key of the project they act in (any role).
	member
	// admin routes need an admin key.
	admin
	// signed routes need no API key: the handler verifies the sender's own
	// signature and answers 401 like a keyed route to anything it cannot
	// verify (webhooks).
	signed
)

// class is a route's rate-limit class (Config.RateLimits).
type class int

const (
	classDefault class = iota
	classCreate        // creates sandboxes, templates, images, jobs
	classExec          // runs commands and moves files
	classPreview       // a preview token's requests (not a route's class)
)

// body is what a route accepts as a request body.
type body int

const (
	// jsonBody routes take a JSON object (or nothing) and require
	// Content-Type: application/json on POST, PUT and PATCH.
	jsonBody body = iota
	// rawBody routes take bytes (file uploads).
	rawBody
)

type route struct {
	pattern string
	access  access
	class   class
	body    body
	handler http.HandlerFunc
}

// routes is the API's one route table. Every route is wrapped by guard
// (credentials, role, project, rate limit, content type, audit) according
// to its access, class and body; openapi_test.go checks the public part
// against the OpenAPI document, both ways, and auth_test.go walks it to prove
// every route but /health refuses requests without a valid key.
func (s *Server) routes() []route {
	rs := []route{
		{pattern: "GET /health", access: open, handler: s.handleHealth},
		{pattern: "GET /metrics", access: scrape, handler: promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}).ServeHTTP},
	}
	if s.cfg.Public {
		rs = append(rs, s.publicRoutes()...)
		for _, m := range portMethods { // the port proxy takes any body, in any method
			rs = append(rs, route{pattern: m + " /api/v1/vms/{id}/ports/{port}/{path...}", access: member, body: rawBody,
				handler: s.vmPort(s.sandboxes)})
		}
	}
	if s.cfg.Local != nil && s.cfg.InternalToken != "" {
		rs = append(rs,
			route{pattern: "POST /internal/v1/vms/{id}/exec", access: internal, handler: s.vmExec(s.cfg.Local)},
			route{pattern: "PUT /internal/v1/vms/{id}/files", access: internal, body: rawBody, handler: s.filePut(s.cfg.Local)},
			route{pattern: "GET /internal/v1/vms/{id}/files", access: internal, handler: s.fileGet(s.cfg.Local)},
			route{pattern: "GET /internal/v1/vms/{id}/console", access: internal, handler: s.vmConsole(s.cfg.Local)},
			route{pattern: "GET /internal/v1/vms/{id}/pty", access: internal, handler: s.vmPty(s.cfg.Local)},
			route{pattern: "GET /internal/v1/vms/{id}/tcp/{port}", access: internal, handler: s.vmTCP(s.cfg.Local)},
			route{pattern: "GET /internal/v1/vms/{id}/processes", access: internal, handler: s.processes(s.cfg.Local)},
			route{pattern: "POST /internal/v1/vms/{id}/processes/{pid}/signal", access: internal, handler: s.processSignal(s.cfg.Local)},
			route{pattern: "GET /internal/v1/vms/{id}/processes/{pid}/output", access: internal, handler: s.processOutput(s.cfg.Local)},
			route{pattern: "GET /internal/v1/vms/{id}/files/list", access: internal, handler: s.fileList(s.cfg.Local)},
			route{pattern: "GET /internal/v1/vms/{id}/files/watch", access: internal, handler: s.fileWatch(s.cfg.Local)},
		)
	}
	return rs
}

func (s *Server) publicRoutes() []route {
	return []route{
		{pattern: "GET /api/v1/openapi.json", access: member, handler: s.handleOpenAPI},

		{pattern: "POST /api/v1/vms", access: member, class: classCreate, handler: s.handleVMCreate},
		{pattern: "GET /api/v1/vms", access: member, handler: s.handleVMList},
		{pattern: "GET /api/v1/vms/{id}", access: member, handler: s.handleVMGet},
		{pattern: "DELETE /api/v1/vms/{id}", access: member, handler: s.handleVMDelete},
		{pattern: "POST /api/v1/vms/{id}/execute", access: member, class: classExec, handler: s.handleVMExecute},
		{pattern: "POST /api/v1/vms/{id}/exec", access: member, class: classExec, handler: s.vmExec(s.sandboxes)},
		{pattern: "GET /api/v1/vms/{id}/executions", access: member, handler: s.handleVMExecutions},
		{pattern: "POST /api/v1/vms/{id}/timeout", access: member, handler: s.handleVMTimeout},
		{pattern: "POST /api/v1/vms/{id}/pause", access: member, handler: s.handleVMPause},
		{pattern: "POST /api/v1/vms/{id}/resume", access: member, handler: s.handleVMResume},
		{pattern: "POST /api/v1/vms/{id}/snapshot", access: member, class: classCreate, handler: s.handleVMSnapshot},
		{pattern: "POST /api/v1/vms/{id}/pull-request", access: member, handler: s.handleVMPullRequest},
		{pattern: "PUT /api/v1/vms/{id}/files", access: member, class: classExec, body: rawBody, handler: s.filePut(s.sandboxes)},
		{pattern: "GET /api/v1/vms/{id}/files", access: member, class: classExec, handler: s.fileGet(s.sandboxes)},
		{pattern: "GET /api/v1/vms/{id}/console", access: member, handler: s.vmConsole(s.sandboxes)},
		{pattern: "GET /api/v1/vms/{id}/pty", access: member, class: classExec, handler: s.vmPty(s.sandboxes)},
		{pattern: "GET /api/v1/vms/{id}/tcp/{port}", access: member, class: classExec, handler: s.vmTCP(s.sandboxes)},
		{pattern: "GET /api/v1/vms/{id}/processes", access: member, class: classExec, handler: s.processes(s.sandboxes)},
		{pattern: "POST /api/v1/vms/{id}/processes/{pid}/signal", access: member, class: classExec, handler: s.processSignal(s.sandboxes)},
		{pattern: "GET /api/v1/vms/{id}/processes/{pid}/output", access: member, class: classExec, handler: s.processOutput(s.sandboxes)},
		{pattern: "GET /api/v1/vms/{id}/files/list", access: member, class: classExec, handler: s.fileList(s.sandboxes)},
		{pattern: "GET /api/v1/vms/{id}/files/watch", access: member, class: classExec, handler: s.fileWatch(s.sandboxes)},
		{pattern: "POST /api/v1/vms/{id}/previews", access: member, handler: s.handlePreviewCreate},
		{pattern: "GET /api/v1/vms/{id}/previews", access: member, handler: s.handlePreviewList},
		{pattern: "DELETE /api/v1/vms/{id}/previews/{token}", access: member, handler: s.handlePreviewDelete},

		{pattern: "GET /api/v1/tasks", access: member, handler: s.handleTaskList},
		{pattern: "GET /api/v1/tasks/{id}", access: member, handler: s.handleTaskGet},
		{pattern: "POST /api/v1/jobs", access: member, class: classCreate, handler: s.handleJobCreate},
		{pattern: "GET /api/v1/jobs/{id}", access: member, handler: s.handleJobGet},
		{pattern: "GET /api/v1/events", access: member, handler: s.handleEvents},
		{pattern: "POST /api/v1/templates", access: member, class: classCreate, handler: s.handleTemplateCreate},
		{pattern: "GET /api/v1/templates", access: member, handler: s.handleTemplateList},
		{pattern: "GET /api/v1/templates/{name}", access: member, handler: s.handleTemplateGet},
		{pattern: "DELETE /api/v1/templates/{name}", access: member, handler: s.handleTemplateDelete},
		{pattern: "POST /api/v1/templates/{name}/pool", access: member, handler: s.handleTemplatePool},

		{pattern: "POST /api/v1/images", access: admin, class: classCreate, handler: s.handleImageBuild},
		{pattern: "POST /api/v1/projects", access: admin, handler: s.handleProjectCreate},
		{pattern: "GET /api/v1/projects", access: admin, handler: s.handleProjectList},
		{pattern: "GET /api/v1/projects/{id}", access: admin, handler: s.handleProjectGet},
		{pattern: "PUT /api/v1/projects/{id}/quota", access: admin, handler: s.handleProjectQuota},
		{pattern: "DELETE /api/v1/projects/{id}", access: admin, handler: s.handleProjectDelete},
		{pattern: "POST /api/v1/keys", access: admin, handler: s.handleKeyCreate},
		{pattern: "GET /api/v1/keys", access: admin, handler: s.handleKeyList},
		{pattern: "DELETE /api/v1/keys/{id}", access: admin, handler: s.handleKeyRevoke},
		{pattern: "GET /api/v1/audit", access: admin, handler: s.handleAuditList},
		{pattern: "POST /api/v1/logs/query", access: member, handler: s.handleLogQuery},
		{pattern: "GET /api/v1/logs/stream", access: member, handler: s.handleLogStream},
		{pattern: "POST /api/v1/webhooks/{name}", access: signed, body: rawBody, handler: s.handleWebhook},

		{pattern: "GET /{$}", access: open, handler: dashboard.Index},
		{pattern: "GET /ui/{file...}", access: open, handler: dashboard.Asset},
		{pattern: "POST /api/v1/session", access: open, handler: s.handleSessionCreate},
		{pattern: "GET /api/v1/session", access: member, handler: s.handleSessionGet},
		{pattern: "DELETE /api/v1/session", access: member, handler: s.handleSessionDelete},
		{pattern: "GET /api/v1/workers", access: admin, handler: s.handleWorkerList},
	}
}

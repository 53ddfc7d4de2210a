package api

import (
	"crypto/subtle"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/aetherium/aetherium/internal/apiv1"
)

type route struct {
	pattern string
	handler http.HandlerFunc
}

// routes is the API's one route table. openapi_test.go checks the public
// part against the OpenAPI document, both ways.
func (s *Server) routes() []route {
	rs := []route{
		{"GET /health", s.handleHealth},
		{"GET /metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}).ServeHTTP},
	}
	if s.cfg.Public {
		rs = append(rs, s.publicRoutes()...)
	}
	if s.cfg.Local != nil && s.cfg.InternalToken != "" {
		rs = append(rs,
			route{"POST /internal/v1/vms/{id}/exec", s.internal(s.vmExec(s.cfg.Local))},
			route{"PUT /internal/v1/vms/{id}/files", s.internal(s.filePut(s.cfg.Local))},
			route{"GET /internal/v1/vms/{id}/files", s.internal(s.fileGet(s.cfg.Local))},
			route{"GET /internal/v1/vms/{id}/console", s.internal(s.vmConsole(s.cfg.Local))},
		)
	}
	return rs
}

func (s *Server) publicRoutes() []route {
	return []route{
		{"GET /api/v1/openapi.json", s.handleOpenAPI},

		{"POST /api/v1/vms", s.handleVMCreate},
		{"GET /api/v1/vms", s.handleVMList},
		{"GET /api/v1/vms/{id}", s.handleVMGet},
		{"DELETE /api/v1/vms/{id}", s.handleVMDelete},
		{"POST /api/v1/vms/{id}/execute", s.handleVMExecute},
		{"POST /api/v1/vms/{id}/exec", s.vmExec(s.sandboxes)},
		{"GET /api/v1/vms/{id}/executions", s.handleVMExecutions},
		{"POST /api/v1/vms/{id}/timeout", s.handleVMTimeout},
		{"POST /api/v1/vms/{id}/pause", s.handleVMPause},
		{"POST /api/v1/vms/{id}/resume", s.handleVMResume},
		{"POST /api/v1/vms/{id}/snapshot", s.handleVMSnapshot},
		{"PUT /api/v1/vms/{id}/files", s.filePut(s.sandboxes)},
		{"GET /api/v1/vms/{id}/files", s.fileGet(s.sandboxes)},
		{"GET /api/v1/vms/{id}/console", s.vmConsole(s.sandboxes)},

		{"GET /api/v1/tasks/{id}", s.handleTaskGet},
		{"POST /api/v1/jobs", s.handleJobCreate},
		{"GET /api/v1/jobs/{id}", s.handleJobGet},
		{"POST /api/v1/images", s.handleImageBuild},
		{"GET /api/v1/events", s.handleEvents},
		{"POST /api/v1/templates", s.handleTemplateCreate},
		{"GET /api/v1/templates", s.handleTemplateList},
		{"GET /api/v1/templates/{name}", s.handleTemplateGet},
		{"DELETE /api/v1/templates/{name}", s.handleTemplateDelete},
		{"POST /api/v1/templates/{name}/pool", s.handleTemplatePool},
		{"POST /api/v1/logs/query", s.handleLogQuery},
		{"GET /api/v1/logs/stream", s.handleLogStream},
	}
}

// internal guards a route with the cluster's shared token. The comparison is
// constant-time; a wrong or missing token is 401 and says nothing more.
func (s *Server) internal(h http.HandlerFunc) http.HandlerFunc {
	want := []byte("Bearer " + s.cfg.InternalToken)
	return func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			writeJSON(w, http.StatusUnauthorized, apiv1.ErrorBody{Error: apiv1.ErrorDetail{Code: "unauthorized", Message: "missing or wrong internal token"}})
			return
		}
		h(w, r)
	}
}

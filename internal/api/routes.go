package api

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type route struct {
	pattern string
	handler http.HandlerFunc
}

// routes is the API's one route table. openapi_test.go checks it against the
// OpenAPI document, both ways.
func (s *Server) routes() []route {
	return []route{
		{"GET /health", s.handleHealth},
		{"GET /metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}).ServeHTTP},
		{"GET /api/v1/openapi.json", s.handleOpenAPI},

		{"POST /api/v1/vms", s.handleVMCreate},
		{"GET /api/v1/vms", s.handleVMList},
		{"GET /api/v1/vms/{id}", s.handleVMGet},
		{"DELETE /api/v1/vms/{id}", s.handleVMDelete},
		{"POST /api/v1/vms/{id}/execute", s.handleVMExecute},
		{"POST /api/v1/vms/{id}/exec", s.handleVMExec},
		{"GET /api/v1/vms/{id}/executions", s.handleVMExecutions},
		{"PUT /api/v1/vms/{id}/files", s.handleFilePut},
		{"GET /api/v1/vms/{id}/files", s.handleFileGet},

		{"GET /api/v1/tasks/{id}", s.handleTaskGet},
		{"POST /api/v1/jobs", s.handleJobCreate},
		{"GET /api/v1/jobs/{id}", s.handleJobGet},
		{"POST /api/v1/images", s.handleImageBuild},
	}
}

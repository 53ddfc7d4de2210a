package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
	"github.com/aetherium/aetherium/internal/tools"
)

type createTemplateRequest struct {
	Name string `json:"name"`
	// PoolSize is how many started sandboxes to keep ready (not part of the
	// spec: changing it never rebuilds).
	PoolSize int `json:"pool_size"`
	task.TemplateSpec
}

// maxPoolSize bounds a template's warm pool.
const maxPoolSize = 100

// maxSetupCommands bounds a template's setup list.
const maxSetupCommands = 100

// handleTemplateCreate builds a template once. The same name and spec again
// is a cache hit (200 with the template, or 202 with the running build's
// task); the same name with another spec is 409; a failed template is
// rebuilt.
func (s *Server) handleTemplateCreate(w http.ResponseWriter, r *http.Request) {
	var req createTemplateRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if !nameRE.MatchString(req.Name) {
		s.writeError(w, r, errdefs.InvalidArgument("name: %q must be a DNS label like a sandbox name", req.Name))
		return
	}
	if req.PoolSize < 0 || req.PoolSize > maxPoolSize {
		s.writeError(w, r, errdefs.InvalidArgument("pool_size: must be between 0 and %d", maxPoolSize))
		return
	}
	if len(req.Setup) > maxSetupCommands {
		s.writeError(w, r, errdefs.InvalidArgument("setup: at most %d commands", maxSetupCommands))
		return
	}
	for i, c := range req.Setup {
		if c == "" {
			s.writeError(w, r, errdefs.InvalidArgument("setup[%d]: must not be empty", i))
			return
		}
	}
	if req.Base == "" {
		req.Base = s.cfg.DefaultImage
	}
	steps, err := s.cfg.Tools.Plan(req.Tools, req.ToolVersions)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	hash := req.TemplateSpec.Hash(steps)
	if done := s.existingTemplate(w, r, req.Name, hash); done {
		return
	}
	owner, err := s.cfg.Place(r.Context(), "", templateBuildVCPUs, templateBuildMemoryMB)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	spec, err := json.Marshal(req.TemplateSpec)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	tplID := uuid.NewString()
	build := &store.VMInsertParams{ID: uuid.NewString(), Name: "template-build-" + tplID[:8], Image: req.Base,
		Runtime: s.cfg.RuntimeName, VCPUs: templateBuildVCPUs, MemoryMB: templateBuildMemoryMB, WorkerID: owner}
	t, err := s.submit(r, task.TemplateBuildArgs{TemplateID: tplID}, &task.SubmitParams{Route: owner,
		Timeout: task.CreateTimeout(steps), VM: build,
		Template: &store.TemplateInsertParams{ID: tplID, Name: req.Name, Spec: spec, SpecHash: hash, WorkerID: owner, PoolSize: req.PoolSize}})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, apiv1.TemplateAccepted{TaskID: t.ID, TemplateID: tplID, Status: t.Status})
}

// existingTemplate answers for a template name that exists already and
// reports whether it did; a failed one is removed so it can be rebuilt.
func (s *Server) existingTemplate(w http.ResponseWriter, r *http.Request, name, hash string) bool {
	tpl, err := s.store.TemplateGet(r.Context(), &store.TemplateGetParams{ProjectID: project(r), IDOrName: name})
	switch {
	case err != nil:
		if errors.Is(err, errdefs.ErrNotFound) {
			return false
		}
		s.writeError(w, r, err)
	case tpl.SpecHash != hash:
		s.writeError(w, r, errdefs.Conflict("template %s exists with another spec; delete it or choose another name", name))
	case tpl.Status == store.TemplateReady:
		writeJSON(w, http.StatusOK, apiv1.TemplateAccepted{TemplateID: tpl.ID, Status: tpl.Status, Cached: true, Template: templateOut(tpl)})
	case tpl.Status == store.TemplateBuilding:
		writeJSON(w, http.StatusAccepted, apiv1.TemplateAccepted{TaskID: tpl.TaskID, TemplateID: tpl.ID, Status: tpl.Status, Cached: true})
	default: // failed: start over
		if err := s.store.TemplateDelete(r.Context(), &store.TemplateGetParams{ProjectID: project(r), IDOrName: tpl.ID}); err != nil {
			s.writeError(w, r, err)
			return true
		}
		return false
	}
	return true
}

func (s *Server) handleTemplateList(w http.ResponseWriter, r *http.Request) {
	list, err := s.store.TemplateList(r.Context(), project(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiv1.TemplateList{Templates: each(list, templateOut), Total: len(list)})
}

func (s *Server) handleTemplateGet(w http.ResponseWriter, r *http.Request) {
	tpl, err := s.store.TemplateGet(r.Context(), &store.TemplateGetParams{ProjectID: project(r), IDOrName: r.PathValue("name")})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, templateOut(tpl))
}

// handleTemplateDelete removes the template's image on its worker and then
// the row, through a task on that worker.
func (s *Server) handleTemplateDelete(w http.ResponseWriter, r *http.Request) {
	tpl, err := s.store.TemplateGet(r.Context(), &store.TemplateGetParams{ProjectID: project(r), IDOrName: r.PathValue("name")})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if tpl.Status == store.TemplateBuilding {
		s.writeError(w, r, errdefs.Conflict("template %s is still building (task %s)", tpl.Name, tpl.TaskID))
		return
	}
	t, err := s.submit(r, task.TemplateDeleteArgs{TemplateID: tpl.ID}, &task.SubmitParams{Route: tpl.WorkerID})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, accepted(t, ""))
}

// handleTemplatePool sets how many ready sandboxes of the template its
// worker keeps started; the worker fills or drains the pool within seconds.
func (s *Server) handleTemplatePool(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Size *int `json:"size"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Size == nil || *req.Size < 0 || *req.Size > maxPoolSize {
		s.writeError(w, r, errdefs.InvalidArgument("size: required, between 0 and %d", maxPoolSize))
		return
	}
	tpl, err := s.store.TemplateGet(r.Context(), &store.TemplateGetParams{ProjectID: project(r), IDOrName: r.PathValue("name")})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if tpl, err = s.store.TemplateUpdate(r.Context(), &store.TemplateUpdateParams{ID: tpl.ID, Status: tpl.Status, PoolSize: req.Size}); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, templateOut(tpl))
}

// claimPooled hands the request a warm sandbox of its template when one is
// ready and the request fits it (no tools beyond the template's, the pool's
// resources). It answers the request and returns true, or returns false to
// let the normal create run.
func (s *Server) claimPooled(w http.ResponseWriter, r *http.Request, req *createVMRequest, vcpus, mem int) bool {
	if req.Template == "" || vcpus != task.PoolVCPUs || mem != task.PoolMemoryMB || req.egressSet {
		return false // pool sandboxes have the template's egress policy
	}
	tpl, err := s.store.TemplateGet(r.Context(), &store.TemplateGetParams{ProjectID: project(r), IDOrName: req.Template})
	if err != nil || tpl.PoolSize == 0 {
		return false
	}
	steps, err := s.cfg.Tools.Plan(req.AdditionalTools, req.ToolVersions)
	if err != nil || len(tools.Unbaked(steps, tpl.ToolsInstalled)) > 0 {
		return false
	}
	params := &store.VMClaimParams{ProjectID: project(r), TemplateID: tpl.ID, Name: req.Name,
		IdleTimeoutS: req.IdleTimeoutSeconds, OnExpire: req.OnExpire}
	if req.TimeoutSeconds > 0 {
		exp := time.Now().Add(time.Duration(req.TimeoutSeconds) * time.Second)
		params.ExpiresAt = &exp
	}
	vm, err := s.store.VMClaimPooled(r.Context(), params)
	if errors.Is(err, errdefs.ErrNotFound) {
		return false // pool empty: create normally
	}
	if err != nil {
		s.writeError(w, r, err)
		return true
	}
	// The create is already done: record it as a finished task so clients
	// follow the same 202-then-wait contract.
	t, err := s.submit(r, task.VMCreateArgs{FromPool: true}, &task.SubmitParams{VMID: vm.ID,
		Result: &task.VMResult{VMID: vm.ID, Status: vm.Status, RuntimeID: vm.RuntimeID}})
	if err != nil {
		s.writeError(w, r, err)
		return true
	}
	writeJSON(w, http.StatusAccepted, accepted(t, ""))
	return true
}

// The sandbox a template is built in gets these resources.
const (
	templateBuildVCPUs    = 2
	templateBuildMemoryMB = 2048
)

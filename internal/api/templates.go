package api

import (
	"encoding/json"
	"net/http"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/worker"
)

type createTemplateRequest struct {
	Name string `json:"name"`
	worker.TemplateSpec
}

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
	owner, err := s.cfg.Place(r.Context(), "")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	spec, _ := json.Marshal(req.TemplateSpec)
	tplID := uuid.NewString()
	build := &store.VMInsertParams{ID: uuid.NewString(), Name: "template-build-" + tplID[:8], Image: req.Base,
		Runtime: s.cfg.RuntimeName, VCPUs: 2, MemoryMB: 2048, WorkerID: owner}
	task, err := s.insertTask(r.Context(), worker.TypeTemplate, build.ID, owner, &worker.TemplatePayload{TemplateID: tplID},
		&store.TaskInsertParams{VM: build, Timeout: worker.CreateTaskTimeout(steps),
			Template: &store.TemplateInsertParams{ID: tplID, Name: req.Name, Spec: spec, SpecHash: hash, WorkerID: owner}})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"task_id": task.ID, "template_id": tplID, "status": task.Status, "cached": false})
}

// existingTemplate answers for a template name that exists already and
// reports whether it did; a failed one is removed so it can be rebuilt.
func (s *Server) existingTemplate(w http.ResponseWriter, r *http.Request, name, hash string) bool {
	tpl, err := s.store.TemplateGet(r.Context(), &store.TemplateGetParams{ProjectID: store.DefaultProjectID, IDOrName: name})
	switch {
	case err != nil:
		if errdefs.IsNotFound(err) {
			return false
		}
		s.writeError(w, r, err)
	case tpl.SpecHash != hash:
		s.writeError(w, r, errdefs.Conflict("template %s exists with another spec; delete it or choose another name", name))
	case tpl.Status == store.TemplateReady:
		writeJSON(w, http.StatusOK, map[string]any{"template_id": tpl.ID, "status": tpl.Status, "cached": true, "template": tpl})
	case tpl.Status == store.TemplateBuilding:
		writeJSON(w, http.StatusAccepted, map[string]any{"task_id": tpl.TaskID, "template_id": tpl.ID, "status": tpl.Status, "cached": true})
	default: // failed: start over
		if err := s.store.TemplateDelete(r.Context(), &store.TemplateGetParams{ProjectID: store.DefaultProjectID, IDOrName: tpl.ID}); err != nil {
			s.writeError(w, r, err)
			return true
		}
		return false
	}
	return true
}

func (s *Server) handleTemplateList(w http.ResponseWriter, r *http.Request) {
	list, err := s.store.TemplateList(r.Context(), store.DefaultProjectID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"templates": list, "total": len(list)})
}

func (s *Server) handleTemplateGet(w http.ResponseWriter, r *http.Request) {
	tpl, err := s.store.TemplateGet(r.Context(), &store.TemplateGetParams{ProjectID: store.DefaultProjectID, IDOrName: r.PathValue("name")})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tpl)
}

// handleTemplateDelete removes the template's image on its worker and then
// the row, through a task on that worker.
func (s *Server) handleTemplateDelete(w http.ResponseWriter, r *http.Request) {
	tpl, err := s.store.TemplateGet(r.Context(), &store.TemplateGetParams{ProjectID: store.DefaultProjectID, IDOrName: r.PathValue("name")})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if tpl.Status == store.TemplateBuilding {
		s.writeError(w, r, errdefs.Conflict("template %s is still building (task %s)", tpl.Name, tpl.TaskID))
		return
	}
	task, err := s.insertTask(r.Context(), worker.TypeTemplateDelete, "", tpl.WorkerID, &worker.TemplatePayload{TemplateID: tpl.ID}, nil)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, taskAccepted{TaskID: task.ID, Status: task.Status})
}

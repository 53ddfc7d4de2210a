package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/worker"
)

// nameRE is a DNS label: sandbox names become hostnames.
var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

type createVMRequest struct {
	Name            string            `json:"name"`
	VCPUs           *int              `json:"vcpus"`
	MemoryMB        *int              `json:"memory_mb"`
	Image           string            `json:"image"`
	Template        string            `json:"template"`
	AdditionalTools []string          `json:"additional_tools"`
	ToolVersions    map[string]string `json:"tool_versions"`
	KeepOnFailure   bool              `json:"keep_on_failure"`
	// TimeoutSeconds expires the sandbox this long after creation; 0 never.
	TimeoutSeconds int `json:"timeout_seconds"`
	// IdleTimeoutSeconds expires it after this long without exec or file
	// transfer (a running exec counts as activity); 0 never.
	IdleTimeoutSeconds int `json:"idle_timeout_seconds"`
	// OnExpire is "delete" (default) or "pause".
	OnExpire string `json:"on_expire"`
}

// maxLifetime bounds timeout_seconds and idle_timeout_seconds.
const maxLifetime = 30 * 24 * time.Hour

func validateLifetime(timeout, idle int, onExpire string) error {
	switch {
	case timeout < 0 || time.Duration(timeout)*time.Second > maxLifetime:
		return errdefs.InvalidArgument("timeout_seconds: must be between 0 and %d", int(maxLifetime.Seconds()))
	case idle < 0 || time.Duration(idle)*time.Second > maxLifetime:
		return errdefs.InvalidArgument("idle_timeout_seconds: must be between 0 and %d", int(maxLifetime.Seconds()))
	case onExpire != "" && onExpire != store.ExpireDelete && onExpire != store.ExpirePause:
		return errdefs.InvalidArgument("on_expire: %q is not delete or pause", onExpire)
	}
	return nil
}

func (s *Server) validateCreate(req *createVMRequest) (vcpus, mem int, timeout time.Duration, err error) {
	vcpus, mem = 1, 512
	if req.VCPUs != nil {
		vcpus = *req.VCPUs
	}
	if req.MemoryMB != nil {
		mem = *req.MemoryMB
	}
	switch {
	case !nameRE.MatchString(req.Name):
		return 0, 0, 0, errdefs.InvalidArgument("name: %q must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit", req.Name)
	case vcpus < 1 || vcpus > s.cfg.MaxVCPUs:
		return 0, 0, 0, errdefs.InvalidArgument("vcpus: %d is out of range 1..%d", vcpus, s.cfg.MaxVCPUs)
	case mem < 128 || mem > s.cfg.MaxMemoryMB:
		return 0, 0, 0, errdefs.InvalidArgument("memory_mb: %d is out of range 128..%d", mem, s.cfg.MaxMemoryMB)
	}
	if err := validateLifetime(req.TimeoutSeconds, req.IdleTimeoutSeconds, req.OnExpire); err != nil {
		return 0, 0, 0, err
	}
	req.AdditionalTools = append(slices.Clone(s.cfg.DefaultTools), req.AdditionalTools...)
	steps, err := s.cfg.Tools.Plan(req.AdditionalTools, req.ToolVersions)
	if err != nil {
		return 0, 0, 0, err // unknown tool or malformed version: 422, nothing created
	}
	return vcpus, mem, worker.CreateTaskTimeout(steps), nil
}

func (s *Server) handleVMCreate(w http.ResponseWriter, r *http.Request) {
	var req createVMRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	vcpus, mem, timeout, err := s.validateCreate(&req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	img, only, err := s.createImage(r.Context(), &req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.claimPooled(w, r, &req, vcpus, mem) {
		return
	}
	owner, err := s.cfg.Place(r.Context(), only)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	vm := &store.VMInsertParams{ID: uuid.NewString(), Name: req.Name, Image: img, Template: req.Template, Runtime: s.cfg.RuntimeName,
		VCPUs: vcpus, MemoryMB: mem, AdditionalTools: req.AdditionalTools, ToolVersions: req.ToolVersions, WorkerID: owner,
		IdleTimeoutS: req.IdleTimeoutSeconds, OnExpire: req.OnExpire}
	if req.TimeoutSeconds > 0 {
		exp := time.Now().Add(time.Duration(req.TimeoutSeconds) * time.Second)
		vm.ExpiresAt = &exp
	}
	task, err := s.insertTask(r.Context(), worker.TypeVMCreate, vm.ID, owner,
		&worker.CreatePayload{KeepOnFailure: req.KeepOnFailure}, &store.TaskInsertParams{VM: vm, Timeout: timeout})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, taskAccepted{TaskID: task.ID, VMID: vm.ID, Status: task.Status})
}

// createImage is the image a create uses and the worker it must run on (the
// one holding the template's image), from the request's template or image.
func (s *Server) createImage(ctx context.Context, req *createVMRequest) (image, only string, err error) {
	switch {
	case req.Template != "" && req.Image != "":
		return "", "", errdefs.InvalidArgument("template, image: give one or the other")
	case req.Template != "":
		tpl, err := s.store.TemplateGet(ctx, &store.TemplateGetParams{ProjectID: store.DefaultProjectID, IDOrName: req.Template})
		if err != nil {
			return "", "", err
		}
		if tpl.Status != store.TemplateReady {
			return "", "", errdefs.FailedPrecondition("template %s is %s", tpl.Name, tpl.Status)
		}
		req.Template = tpl.ID
		return tpl.Image, tpl.WorkerID, nil
	case req.Image != "":
		return req.Image, "", nil
	}
	return s.cfg.DefaultImage, "", nil
}

type taskAccepted struct {
	TaskID string `json:"task_id"`
	VMID   string `json:"vm_id,omitempty"`
	JobID  string `json:"job_id,omitempty"`
	Status string `json:"status"`
}

// insertTask inserts a task row (with the rows it creates, from extra) and
// enqueues its message. The row is the truth: if enqueue fails, the worker's
// reconciler sends the message later, so the request still succeeds.
func (s *Server) insertTask(ctx context.Context, typ, vmID, route string, payload any, extra *store.TaskInsertParams) (*store.Task, error) {
	p := worker.Policies[typ]
	params := &store.TaskInsertParams{ProjectID: store.DefaultProjectID, Type: typ, Priority: p.Priority,
		MaxRetries: p.MaxRetries, VMID: vmID}
	if extra != nil {
		params.VM, params.Job, params.Template, params.Timeout = extra.VM, extra.Job, extra.Template, extra.Timeout
	}
	if ep, ok := payload.(*worker.ExecParams); ok {
		params.Timeout = worker.ExecTaskTimeout(ep)
	}
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return nil, err
		}
		params.Payload = b
	}
	task, err := s.store.TaskInsert(ctx, params)
	if err != nil {
		return nil, err
	}
	if err := worker.Enqueue(ctx, s.queue, task, route); err != nil {
		s.log.WarnContext(ctx, "enqueue failed; the reconciler will retry", slog.String("task_id", task.ID), slog.Any("err", err))
	}
	return task, nil
}

func (s *Server) lookupVM(w http.ResponseWriter, r *http.Request) (*store.VM, bool) {
	return s.lookupVMByKey(w, r, r.PathValue("id"))
}

func (s *Server) lookupVMByKey(w http.ResponseWriter, r *http.Request, key string) (*store.VM, bool) {
	vm, err := s.store.VMGet(r.Context(), &store.VMGetParams{ProjectID: store.DefaultProjectID, IDOrName: key})
	if err != nil {
		s.writeError(w, r, err)
		return nil, false
	}
	return vm, true
}

func (s *Server) handleVMList(w http.ResponseWriter, r *http.Request) {
	vms, err := s.store.VMList(r.Context(), &store.VMListParams{ProjectID: store.DefaultProjectID,
		IncludeDeleted: r.URL.Query().Get("all") == "true"})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"vms": vms, "total": len(vms)})
}

func (s *Server) handleVMGet(w http.ResponseWriter, r *http.Request) {
	if vm, ok := s.lookupVM(w, r); ok {
		writeJSON(w, http.StatusOK, vm)
	}
}

func (s *Server) handleVMDelete(w http.ResponseWriter, r *http.Request) {
	vm, ok := s.lookupVM(w, r)
	if !ok {
		return
	}
	if vm.Status == store.VMDeleted {
		s.writeError(w, r, errdefs.NotFound("sandbox %s is already deleted", vm.ID))
		return
	}
	route := vm.WorkerID
	if vm.Status == store.VMLost {
		route = "" // its owner is gone: any worker records the delete
	}
	task, err := s.insertTask(r.Context(), worker.TypeVMDelete, vm.ID, route, nil, nil)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	deleting := store.VMDeleting
	s.store.VMUpdate(r.Context(), &store.VMUpdateParams{ID: vm.ID, Status: &deleting})
	writeJSON(w, http.StatusAccepted, taskAccepted{TaskID: task.ID, VMID: vm.ID, Status: task.Status})
}

// usable rejects commands for sandboxes that will never run them. A sandbox
// still being created is fine: its tasks wait for it.
func usable(vm *store.VM) error {
	switch vm.Status {
	case store.VMRunning, store.VMCreating:
		return nil
	}
	return errdefs.FailedPrecondition("sandbox %s is %s", vm.Name, vm.Status)
}

func (s *Server) handleVMExecute(w http.ResponseWriter, r *http.Request) {
	vm, ok := s.lookupVM(w, r)
	if !ok {
		return
	}
	var p worker.ExecParams
	if err := decodeJSON(w, r, &p); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := p.Validate(); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := usable(vm); err != nil {
		s.writeError(w, r, err)
		return
	}
	task, err := s.insertTask(r.Context(), worker.TypeVMExecute, vm.ID, vm.WorkerID, &p, nil)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, taskAccepted{TaskID: task.ID, VMID: vm.ID, Status: task.Status})
}

func (s *Server) handleVMExecutions(w http.ResponseWriter, r *http.Request) {
	vm, ok := s.lookupVM(w, r)
	if !ok {
		return
	}
	list, err := s.store.ExecutionList(r.Context(), &store.ExecutionListParams{ProjectID: vm.ProjectID, VMID: vm.ID})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"executions": list, "total": len(list)})
}

// handleVMTimeout sets a sandbox's deadline to timeout_seconds from now
// (extending or shortening it); 0 removes the deadline.
func (s *Server) handleVMTimeout(w http.ResponseWriter, r *http.Request) {
	vm, ok := s.lookupVM(w, r)
	if !ok {
		return
	}
	var req struct {
		TimeoutSeconds *int `json:"timeout_seconds"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.TimeoutSeconds == nil {
		s.writeError(w, r, errdefs.InvalidArgument("timeout_seconds: required (0 removes the deadline)"))
		return
	}
	if err := validateLifetime(*req.TimeoutSeconds, 0, ""); err != nil {
		s.writeError(w, r, err)
		return
	}
	if vm.Status == store.VMDeleted || vm.Status == store.VMDeleting {
		s.writeError(w, r, errdefs.FailedPrecondition("sandbox %s is %s", vm.Name, vm.Status))
		return
	}
	var exp time.Time // zero clears
	if *req.TimeoutSeconds > 0 {
		exp = time.Now().Add(time.Duration(*req.TimeoutSeconds) * time.Second)
	}
	vm, err := s.store.VMUpdate(r.Context(), &store.VMUpdateParams{ID: vm.ID, ExpiresAt: &exp})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, vm)
}

// handleVMPause freezes a running sandbox (async, on its worker).
func (s *Server) handleVMPause(w http.ResponseWriter, r *http.Request) {
	s.vmStateTask(w, r, worker.TypeVMPause, store.VMRunning)
}

// handleVMResume thaws a paused sandbox (async, on its worker).
func (s *Server) handleVMResume(w http.ResponseWriter, r *http.Request) {
	s.vmStateTask(w, r, worker.TypeVMResume, store.VMPaused)
}

func (s *Server) vmStateTask(w http.ResponseWriter, r *http.Request, typ, from string) {
	vm, ok := s.lookupVM(w, r)
	if !ok {
		return
	}
	if vm.Status != from {
		s.writeError(w, r, errdefs.FailedPrecondition("sandbox %s is %s, not %s", vm.Name, vm.Status, from))
		return
	}
	task, err := s.insertTask(r.Context(), typ, vm.ID, vm.WorkerID, nil, nil)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, taskAccepted{TaskID: task.ID, VMID: vm.ID, Status: task.Status})
}

// handleVMSnapshot saves the sandbox's filesystem as a new template named in
// the body, so new sandboxes can start from this state.
func (s *Server) handleVMSnapshot(w http.ResponseWriter, r *http.Request) {
	vm, ok := s.lookupVM(w, r)
	if !ok {
		return
	}
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if !nameRE.MatchString(req.Name) {
		s.writeError(w, r, errdefs.InvalidArgument("name: %q must be a DNS label", req.Name))
		return
	}
	if vm.Status != store.VMRunning && vm.Status != store.VMPaused {
		s.writeError(w, r, errdefs.FailedPrecondition("sandbox %s is %s", vm.Name, vm.Status))
		return
	}
	tplID := uuid.NewString()
	spec, _ := json.Marshal(map[string]string{"snapshot_of": vm.ID})
	task, err := s.insertTask(r.Context(), worker.TypeVMSnapshot, vm.ID, vm.WorkerID, &worker.SnapshotPayload{TemplateID: tplID},
		&store.TaskInsertParams{Template: &store.TemplateInsertParams{ID: tplID, Name: req.Name, Spec: spec,
			SpecHash: "snap-" + tplID[:8], WorkerID: vm.WorkerID}})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"task_id": task.ID, "template_id": tplID, "vm_id": vm.ID, "status": task.Status})
}

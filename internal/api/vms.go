package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/internal/egress"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
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
	// Egress is "internet", "none" or an allowlist; unset means the
	// template's, else the configuration's.
	Egress egress.Policy `json:"egress"`
	// egressSet says the request itself gave Egress (not its template).
	egressSet bool
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
	return vcpus, mem, task.CreateTimeout(steps), nil
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
	req.egressSet = !req.Egress.IsZero()
	img, only, err := s.createImage(r, &req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.claimPooled(w, r, &req, vcpus, mem) {
		return
	}
	owner, err := s.cfg.Place(r.Context(), only, vcpus, mem)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	vm := &store.VMInsertParams{ID: uuid.NewString(), Name: req.Name, Image: img, Template: req.Template, Runtime: s.cfg.RuntimeName,
		VCPUs: vcpus, MemoryMB: mem, AdditionalTools: req.AdditionalTools, ToolVersions: req.ToolVersions, WorkerID: owner,
		IdleTimeoutS: req.IdleTimeoutSeconds, OnExpire: req.OnExpire, Egress: req.Egress.Or(s.cfg.DefaultEgress).String()}
	if req.TimeoutSeconds > 0 {
		exp := time.Now().Add(time.Duration(req.TimeoutSeconds) * time.Second)
		vm.ExpiresAt = &exp
	}
	t, err := s.submit(r, task.VMCreateArgs{KeepOnFailure: req.KeepOnFailure},
		&task.SubmitParams{Route: owner, Timeout: timeout, VM: vm})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, accepted(t, ""))
}

// createImage is the image a create uses and the worker it must run on (the
// one holding the template's image), from the request's template or image.
func (s *Server) createImage(r *http.Request, req *createVMRequest) (image, only string, err error) {
	switch {
	case req.Template != "" && req.Image != "":
		return "", "", errdefs.InvalidArgument("template, image: give one or the other")
	case req.Template != "":
		tpl, err := s.store.TemplateGet(r.Context(), &store.TemplateGetParams{ProjectID: project(r), IDOrName: req.Template})
		if err != nil {
			return "", "", err
		}
		if tpl.Status != store.TemplateReady {
			return "", "", errdefs.FailedPrecondition("template %s is %s", tpl.Name, tpl.Status)
		}
		req.Template = tpl.ID
		var spec task.TemplateSpec
		if json.Unmarshal(tpl.Spec, &spec) == nil {
			req.Egress = req.Egress.Or(spec.Egress)
		}
		return tpl.Image, tpl.WorkerID, nil
	case req.Image != "":
		return req.Image, "", nil
	}
	return s.cfg.DefaultImage, "", nil
}

func (s *Server) lookupVM(w http.ResponseWriter, r *http.Request) (*store.VM, bool) {
	return s.lookupVMByKey(w, r, r.PathValue("id"))
}

func (s *Server) lookupVMByKey(w http.ResponseWriter, r *http.Request, key string) (*store.VM, bool) {
	vm, err := s.store.VMGet(r.Context(), &store.VMGetParams{ProjectID: project(r), IDOrName: key})
	if err != nil {
		s.writeError(w, r, err)
		return nil, false
	}
	return vm, true
}

// handleVMList lists the project's sandboxes, oldest first, a page at a
// time: ?limit= (default 100, at most 1000), ?cursor= (the previous page's
// next), ?all=true to include deleted ones.
func (s *Server) handleVMList(w http.ResponseWriter, r *http.Request) {
	limit, err := pageLimit(r.URL.Query().Get("limit"), defaultPage, maxPage)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	vms, err := s.store.VMList(r.Context(), &store.VMListParams{ProjectID: project(r),
		IncludeDeleted: r.URL.Query().Get("all") == "true", After: r.URL.Query().Get("cursor"), Limit: limit})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := apiv1.VMList{VMs: each(vms, vmOut), Total: len(vms)}
	if len(vms) == limit {
		out.Next = vms[len(vms)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleVMGet(w http.ResponseWriter, r *http.Request) {
	if vm, ok := s.lookupVM(w, r); ok {
		writeJSON(w, http.StatusOK, vmOut(vm))
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
	t, err := s.submit(r, task.VMDeleteArgs{}, &task.SubmitParams{Route: route, VMID: vm.ID})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The task settles the status either way; this only shows the delete
	// at once.
	deleting := store.VMDeleting
	if _, err := s.store.VMUpdate(r.Context(), &store.VMUpdateParams{ID: vm.ID, Status: &deleting}); err != nil {
		s.log.WarnContext(r.Context(), "mark sandbox deleting", slog.String("sandbox_id", vm.ID), slog.Any("err", err))
	}
	writeJSON(w, http.StatusAccepted, accepted(t, ""))
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
	var a task.VMExecuteArgs
	if err := decodeJSON(w, r, &a); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := a.Validate(); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := usable(vm); err != nil {
		s.writeError(w, r, err)
		return
	}
	t, err := s.submit(r, a, &task.SubmitParams{Route: vm.WorkerID, VMID: vm.ID})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, accepted(t, ""))
}

// handleVMExecutions lists a sandbox's executions, oldest first, paginated
// as handleVMList (?limit=, default 20, at most 100; ?cursor=).
func (s *Server) handleVMExecutions(w http.ResponseWriter, r *http.Request) {
	vm, ok := s.lookupVM(w, r)
	if !ok {
		return
	}
	limit, err := pageLimit(r.URL.Query().Get("limit"), defaultExecPage, maxExecPage)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list, err := s.store.ExecutionList(r.Context(), &store.ExecutionListParams{ProjectID: vm.ProjectID, VMID: vm.ID,
		After: r.URL.Query().Get("cursor"), Limit: limit})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := apiv1.ExecutionList{Executions: each(list, executionOut), Total: len(list)}
	if len(list) == limit {
		out.Next = list[len(list)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
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
	writeJSON(w, http.StatusOK, vmOut(vm))
}

// handleVMPause freezes a running sandbox (async, on its worker).
func (s *Server) handleVMPause(w http.ResponseWriter, r *http.Request) {
	s.vmStateTask(w, r, task.VMPauseArgs{}, store.VMRunning)
}

// handleVMResume thaws a paused sandbox (async, on its worker).
func (s *Server) handleVMResume(w http.ResponseWriter, r *http.Request) {
	s.vmStateTask(w, r, task.VMResumeArgs{}, store.VMPaused)
}

// vmStateTask submits args for the sandbox in the path when it is in
// status from, else answers 409.
func (s *Server) vmStateTask(w http.ResponseWriter, r *http.Request, args task.Args, from string) {
	vm, ok := s.lookupVM(w, r)
	if !ok {
		return
	}
	if vm.Status != from {
		s.writeError(w, r, errdefs.FailedPrecondition("sandbox %s is %s, not %s", vm.Name, vm.Status, from))
		return
	}
	t, err := s.submit(r, args, &task.SubmitParams{Route: vm.WorkerID, VMID: vm.ID})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, accepted(t, ""))
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
	spec, err := json.Marshal(map[string]string{"snapshot_of": vm.ID})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	t, err := s.submit(r, task.VMSnapshotArgs{TemplateID: tplID}, &task.SubmitParams{Route: vm.WorkerID, VMID: vm.ID,
		Template: &store.TemplateInsertParams{ID: tplID, Name: req.Name, Spec: spec, SpecHash: "snap-" + tplID[:8], WorkerID: vm.WorkerID}})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, apiv1.SnapshotAccepted{TaskID: t.ID, TemplateID: tplID, VMID: vm.ID, Status: t.Status})
}

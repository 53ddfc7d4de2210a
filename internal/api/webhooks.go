package api

import (
	"context"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/internal/auth"
	"github.com/aetherium/aetherium/internal/egress"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/integrations"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// maxWebhookBody bounds a webhook's body (GitHub's push payloads are far
// smaller; Slack's slash commands are a few hundred bytes).
const maxWebhookBody = 2 << 20

// jobSandboxLifetime expires an integration job's sandbox even if its
// deletion after the job is lost: the longest job and some slack.
const jobSandboxLifetime = 2*time.Hour + 10*time.Minute

// handleWebhook receives POST /api/v1/webhooks/{name}. It takes no API key:
// the integration verifies its own signature, and anything unsigned,
// wrongly signed, stale or replayed (or for an integration that is not
// enabled) is 401 before any work is done.
func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Webhooks == nil || !slices.Contains(s.cfg.Webhooks.Names(), r.PathValue("name")) {
		s.writeError(w, r, auth.ErrUnauthenticated) // before reading a byte of the body
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.cfg.Webhooks.HandleWebhook(r.Context(), r.PathValue("name"),
		&integrations.Request{Header: r.Header, Body: body, Now: time.Now()}, s.startIntegrationJob)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp.Body)
}

// startIntegrationJob implements integrations.JobStarter: a fresh sandbox
// (checked and placed as a create request of the project would be) and a
// job on it, which deletes the sandbox when it ends.
func (s *Server) startIntegrationJob(ctx context.Context, projectID string, req *integrations.JobRequest, args task.JobRunArgs) (*integrations.JobStarted, error) {
	// The integration acts in its project as a member would.
	r, err := http.NewRequestWithContext(auth.WithPrincipal(ctx, &auth.Principal{KeyPrefix: "integration", ProjectID: projectID,
		Role: store.RoleMember}), http.MethodPost, "/", nil)
	if err != nil {
		return nil, err
	}
	create := &createVMRequest{Name: req.Name + "-" + uuid.NewString()[:8], Template: req.Template,
		TimeoutSeconds: int(jobSandboxLifetime.Seconds())}
	if req.Egress != "" {
		if create.Egress, err = egress.Parse(req.Egress); err != nil {
			return nil, errdefs.InvalidArgument("egress: %v", err)
		}
	}
	vcpus, mem, timeout, err := s.validateCreate(create)
	if err != nil {
		return nil, err
	}
	img, only, err := s.createImage(r, create)
	if err != nil {
		return nil, err
	}
	owner, err := s.cfg.Place(ctx, only, vcpus, mem)
	if err != nil {
		return nil, err
	}
	exp := time.Now().Add(jobSandboxLifetime)
	vm := &store.VMInsertParams{ID: uuid.NewString(), Name: create.Name, Image: img, Template: create.Template, Runtime: s.cfg.RuntimeName,
		VCPUs: vcpus, MemoryMB: mem, AdditionalTools: create.AdditionalTools, WorkerID: owner, ExpiresAt: &exp,
		Egress: create.Egress.Or(s.cfg.DefaultEgress).String()}
	created, err := s.submit(r, task.VMCreateArgs{}, &task.SubmitParams{Route: owner, Timeout: timeout, VM: vm})
	if err != nil {
		return nil, err
	}
	args.JobID = uuid.NewString()
	t, err := s.submit(r, args, &task.SubmitParams{Route: owner, VMID: vm.ID,
		Job: &store.JobInsertParams{ID: args.JobID, VMID: vm.ID, Commands: req.Commands}})
	if err != nil {
		// The sandbox would wait for a job that never comes: remove it.
		s.submit(r, task.VMDeleteArgs{Reason: "its job could not be created"}, &task.SubmitParams{Route: owner, VMID: vm.ID})
		return nil, err
	}
	return &integrations.JobStarted{JobID: args.JobID, TaskID: t.ID, VMID: created.VMID}, nil
}

// handleVMPullRequest queues an integration:artifact task on the sandbox's
// worker: the commit checked out at path in the sandbox is pushed to branch
// of repo from the host (no token enters the sandbox) and a pull request
// into base is opened; the task's result has its URL (202).
func (s *Server) handleVMPullRequest(w http.ResponseWriter, r *http.Request) {
	vm, ok := s.lookupVM(w, r)
	if !ok {
		return
	}
	var req apiv1.PullRequestRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Base == "" {
		req.Base = "main"
	}
	args := task.IntegrationArtifactArgs{Integration: "github", Repo: req.Repo, Path: req.Path, Branch: req.Branch,
		Base: req.Base, Title: req.Title, Body: req.Body}
	if err := args.Validate(); err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.cfg.Webhooks == nil || !slices.Contains(s.cfg.Webhooks.Names(), args.Integration) {
		s.writeError(w, r, errdefs.FailedPrecondition("the github integration is not enabled"))
		return
	}
	if vm.Status != store.VMRunning {
		s.writeError(w, r, errdefs.FailedPrecondition("sandbox %s is %s, not running", vm.Name, vm.Status))
		return
	}
	t, err := s.submit(r, args, &task.SubmitParams{Route: vm.WorkerID, VMID: vm.ID})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, accepted(t, ""))
}

package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/store"
)

// CreatePayload is the payload of vm:create tasks.
type CreatePayload struct {
	// KeepOnFailure keeps a sandbox whose tool installation failed, marked
	// failed, for inspection; by default it is deleted.
	KeepOnFailure bool `json:"keep_on_failure,omitempty"`
	// Pool marks a warm-pool sandbox: it ends pooled, not running.
	Pool bool `json:"pool,omitempty"`
}

// VMResult is the result of vm:create and vm:delete tasks.
type VMResult struct {
	VMID      string `json:"vm_id"`
	Status    string `json:"status"`
	RuntimeID string `json:"runtime_id,omitempty"`
}

func (w *Worker) vmCreate(ctx context.Context, task *store.Task) (any, error) {
	vm, err := w.store.VMGet(ctx, &store.VMGetParams{ProjectID: task.ProjectID, IDOrName: task.VMID})
	if err != nil {
		return nil, err
	}
	if vm.WorkerID != "" && vm.WorkerID != w.cfg.ID {
		return nil, queue.Permanent(fmt.Errorf("sandbox %s is placed on worker %s, not %s", vm.ID, vm.WorkerID, w.cfg.ID))
	}
	switch vm.Status {
	case store.VMDeleting, store.VMDeleted:
		return &VMResult{VMID: vm.ID, Status: vm.Status}, nil // deleted before it was made
	case store.VMRunning, store.VMPooled:
		return &VMResult{VMID: vm.ID, Status: vm.Status, RuntimeID: vm.RuntimeID}, nil
	}
	steps, err := w.cfg.Tools.Plan(vm.AdditionalTools, vm.ToolVersions)
	if err != nil {
		return nil, queue.Permanent(err)
	}
	baked := map[string]string{}
	if vm.Template != "" {
		tpl, err := w.store.TemplateGet(ctx, &store.TemplateGetParams{ProjectID: vm.ProjectID, IDOrName: vm.Template})
		if err != nil {
			return nil, err
		}
		baked = tpl.ToolsInstalled
		steps = TemplateSteps(steps, baked)
	}
	var p CreatePayload
	json.Unmarshal(task.Payload, &p)
	info, err := w.rt.Create(ctx, &sandbox.Spec{ID: vm.ID, Name: vm.Name, Image: vm.Image, VCPUs: vm.VCPUs, MemoryMB: vm.MemoryMB})
	if err == nil {
		_, err = w.agent(ctx, vm) // readiness: the agent's handshake
	}
	if err != nil {
		w.destroy(ctx, vm.ID) // never leave a half-made sandbox; a retry starts clean
		return nil, err
	}
	running := store.VMRunning
	if len(baked) > 0 {
		if vm, err = w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, ToolsInstalled: baked}); err != nil {
			return nil, err
		}
	}
	if len(steps) > 0 {
		// Commands run only in running sandboxes; the row says running while
		// tools install, and the task shows the progress.
		if vm, err = w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &running, RuntimeID: &info.RuntimeID,
			IPAddress: &info.Address}); err != nil {
			return nil, err
		}
		installed, err := w.installTools(ctx, task, vm, steps)
		if err != nil {
			if !p.KeepOnFailure {
				w.destroy(ctx, vm.ID)
			}
			return nil, err // final: onFinalFailure marks the sandbox failed
		}
		all := maps.Clone(baked)
		maps.Copy(all, installed)
		if _, err := w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, ToolsInstalled: all}); err != nil {
			return nil, err
		}
	}
	// A delete may have arrived while the machine was being made.
	if cur, gerr := w.store.VMGet(ctx, &store.VMGetParams{ProjectID: vm.ProjectID, IDOrName: vm.ID}); gerr == nil &&
		(cur.Status == store.VMDeleting || cur.Status == store.VMDeleted) {
		w.destroy(ctx, vm.ID)
		return &VMResult{VMID: vm.ID, Status: cur.Status}, nil
	}
	empty, final := "", store.VMRunning
	if p.Pool {
		final = store.VMPooled
	}
	vm, err = w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &final, RuntimeID: &info.RuntimeID,
		IPAddress: &info.Address, WorkerID: &w.cfg.ID, Error: &empty})
	if err != nil {
		return nil, err
	}
	return &VMResult{VMID: vm.ID, Status: vm.Status, RuntimeID: vm.RuntimeID}, nil
}

// destroy removes a sandbox's machine, best effort, even after cancellation.
func (w *Worker) destroy(ctx context.Context, id string) error {
	w.agents.Forget(id)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	return w.rt.Delete(dctx, id)
}

func (w *Worker) vmDelete(ctx context.Context, task *store.Task) (any, error) {
	vm, err := w.store.VMGet(ctx, &store.VMGetParams{ProjectID: task.ProjectID, IDOrName: task.VMID})
	if err != nil {
		return nil, err
	}
	// A lost sandbox's delete runs on any worker: it only updates the store,
	// and the owner removes the machine when it comes back (reconciler).
	if vm.WorkerID == "" || vm.WorkerID == w.cfg.ID {
		if err := w.destroy(ctx, vm.ID); err != nil {
			return nil, err
		}
	}
	deleted := store.VMDeleted
	if _, err := w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &deleted}); err != nil {
		return nil, err
	}
	return &VMResult{VMID: vm.ID, Status: deleted}, nil
}

func (w *Worker) vmExecute(ctx context.Context, task *store.Task) (any, error) {
	var p ExecParams
	if err := json.Unmarshal(task.Payload, &p); err != nil {
		return nil, queue.Permanent(fmt.Errorf("bad payload: %w", err))
	}
	if done, err := w.previousRun(ctx, task); done != nil || err != nil {
		return done, err
	}
	vm, err := w.waitCreated(ctx, task.ProjectID, task.VMID)
	if err != nil {
		return nil, err
	}
	e, err := w.Exec(ctx, vm, &p, ExecRecord{TaskID: task.ID}, agentclient.ExecIO{})
	if err != nil {
		return nil, err
	}
	if e.TimedOut {
		return nil, queue.Permanent(fmt.Errorf("%w: command timed out after %ds (execution %s)", errdefs.ErrTimeout, p.TimeoutSeconds, e.ID))
	}
	return resultOf(e), nil
}

// previousRun makes a redelivered vm:execute honest: a command that already
// finished is reported, not run again; one cut off by a crash fails rather
// than running twice.
func (w *Worker) previousRun(ctx context.Context, task *store.Task) (any, error) {
	prev, err := w.store.ExecutionList(ctx, &store.ExecutionListParams{ProjectID: task.ProjectID, VMID: task.VMID, Limit: 10000})
	if err != nil {
		return nil, err
	}
	for _, e := range prev {
		if e.TaskID != task.ID {
			continue
		}
		if e.CompletedAt != nil {
			return resultOf(e), nil
		}
		return nil, queue.Permanent(errors.New("the worker stopped while the command was running; it was not run again"))
	}
	return nil, nil
}

// waitCreated returns the sandbox once it is no longer being created, so a
// command queued right after a create runs when the sandbox is ready.
func (w *Worker) waitCreated(ctx context.Context, projectID, vmID string) (*store.VM, error) {
	for {
		vm, err := w.store.VMGet(ctx, &store.VMGetParams{ProjectID: projectID, IDOrName: vmID})
		if err != nil || vm.Status != store.VMCreating {
			return vm, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// JobPayload is the payload of job:run tasks.
type JobPayload struct {
	JobID string `json:"job_id"`
}

// JobResult is the result of a job:run task.
type JobResult struct {
	JobID    string `json:"job_id"`
	Status   string `json:"status"`
	Executed int    `json:"executed"`
}

func (w *Worker) jobRun(ctx context.Context, task *store.Task) (any, error) {
	var p JobPayload
	if err := json.Unmarshal(task.Payload, &p); err != nil {
		return nil, queue.Permanent(fmt.Errorf("bad payload: %w", err))
	}
	job, err := w.store.JobGet(ctx, &store.JobGetParams{ID: p.JobID})
	if err != nil {
		return nil, err
	}
	done, err := w.store.ExecutionList(ctx, &store.ExecutionListParams{ProjectID: job.ProjectID, JobID: job.ID})
	if err != nil {
		return nil, err
	}
	if len(done) > 0 && done[len(done)-1].CompletedAt == nil {
		return nil, queue.Permanent(errors.New("the worker stopped while a job command was running; the job was not resumed"))
	}
	if _, err := w.store.JobUpdate(ctx, &store.JobUpdateParams{ID: job.ID, Status: store.JobRunning}); err != nil {
		return nil, err
	}
	vm, err := w.waitCreated(ctx, job.ProjectID, job.VMID)
	if err != nil {
		return nil, err
	}
	for i := len(done); i < len(job.Commands); i++ {
		w.setProgress(ctx, task.ID, fmt.Sprintf("command %d/%d", i+1, len(job.Commands)))
		e, err := w.Exec(ctx, vm, &ExecParams{Command: job.Commands[i]}, ExecRecord{TaskID: task.ID, JobID: job.ID}, agentclient.ExecIO{})
		if err != nil {
			return nil, err
		}
		if e.ExitCode == nil || *e.ExitCode != 0 {
			msg := fmt.Sprintf("command %d (%q) failed: %s", i+1, job.Commands[i], describeExit(e))
			w.store.JobUpdate(ctx, &store.JobUpdateParams{ID: job.ID, Status: store.JobFailed, Error: &msg})
			return &JobResult{JobID: job.ID, Status: store.JobFailed, Executed: i + 1}, nil
		}
	}
	if _, err := w.store.JobUpdate(ctx, &store.JobUpdateParams{ID: job.ID, Status: store.JobSucceeded}); err != nil {
		return nil, err
	}
	return &JobResult{JobID: job.ID, Status: store.JobSucceeded, Executed: len(job.Commands)}, nil
}

func describeExit(e *store.Execution) string {
	switch {
	case e.TimedOut:
		return "timed out"
	case e.Signal != "":
		return "killed by " + e.Signal
	case e.ExitCode != nil:
		return fmt.Sprintf("exit code %d", *e.ExitCode)
	}
	return e.Error
}

func (w *Worker) imageBuild(ctx context.Context, task *store.Task) (any, error) {
	if w.images == nil {
		return nil, errdefs.FailedPrecondition("this worker's runtime does not build Docker images")
	}
	var spec image.Spec
	if err := json.Unmarshal(task.Payload, &spec); err != nil {
		return nil, queue.Permanent(fmt.Errorf("bad payload: %w", err))
	}
	var last time.Time
	return w.images.Build(ctx, spec, func(line string) {
		// Progress lines come fast; the row is updated at most 4 times a second.
		if time.Since(last) > 250*time.Millisecond || !strings.HasPrefix(line, "I: ") {
			last = time.Now()
			w.setProgress(ctx, task.ID, line)
		}
	})
}

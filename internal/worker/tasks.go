package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/egress"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
	"github.com/aetherium/aetherium/internal/tools"
)

// vmCreate makes the task's sandbox and installs its tools. It is
// idempotent: a sandbox already made is reported, and a retry starts clean.
func (w *Worker) vmCreate(ctx context.Context, t *store.Task, a task.VMCreateArgs) (*task.VMResult, error) {
	vm, err := w.store.VMGet(ctx, &store.VMGetParams{ProjectID: t.ProjectID, IDOrName: t.VMID})
	if err != nil {
		return nil, err
	}
	if vm.WorkerID != "" && vm.WorkerID != w.cfg.ID {
		return nil, queue.Permanent(fmt.Errorf("sandbox %s is placed on worker %s, not %s", vm.ID, vm.WorkerID, w.cfg.ID))
	}
	switch vm.Status {
	case store.VMDeleting, store.VMDeleted:
		return &task.VMResult{VMID: vm.ID, Status: vm.Status}, nil // deleted before it was made
	case store.VMRunning, store.VMPooled:
		return &task.VMResult{VMID: vm.ID, Status: vm.Status, RuntimeID: vm.RuntimeID}, nil
	}
	steps, err := w.cfg.Tools.Plan(vm.AdditionalTools, vm.ToolVersions)
	if err != nil {
		return nil, queue.Permanent(err)
	}
	policy, err := egress.Parse(vm.Egress)
	if err != nil {
		return nil, queue.Permanent(errdefs.InvalidArgument("sandbox %s: %v", vm.ID, err))
	}
	baked := map[string]string{}
	if vm.Template != "" {
		tpl, err := w.store.TemplateGet(ctx, &store.TemplateGetParams{ProjectID: vm.ProjectID, IDOrName: vm.Template})
		if err != nil {
			return nil, err
		}
		baked = tpl.ToolsInstalled
		steps = tools.Unbaked(steps, baked)
		var spec task.TemplateSpec
		if json.Unmarshal(tpl.Spec, &spec) == nil {
			policy = policy.Or(spec.Egress)
		}
	}
	began := time.Now()
	info, err := w.rt.Create(ctx, &sandbox.Spec{ID: vm.ID, Name: vm.Name, Image: vm.Image, VCPUs: vm.VCPUs, MemoryMB: vm.MemoryMB,
		Egress: policy.Or(w.cfg.DefaultEgress)})
	made := time.Now()
	if err == nil {
		_, err = w.agent(ctx, vm) // readiness: the agent's handshake
	}
	ready := time.Now()
	if err != nil {
		w.discard(ctx, vm.ID) // never leave a half-made sandbox; a retry starts clean
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
			return w.createLost(ctx, t, err)
		}
		installed, err := w.installTools(ctx, t, vm, steps)
		if err != nil {
			if !a.KeepOnFailure {
				w.discard(ctx, vm.ID)
			}
			return nil, err // final: failVMCreate marks the sandbox failed
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
		w.discard(ctx, vm.ID)
		return &task.VMResult{VMID: vm.ID, Status: cur.Status}, nil
	}
	empty, final, now := "", store.VMRunning, time.Now()
	if a.Pool {
		final = store.VMPooled
	}
	// An idle timeout counts from here: a create slower than the timeout
	// (a busy host) had the sandbox expire as it became ready.
	vm, err = w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &final, RuntimeID: &info.RuntimeID,
		IPAddress: &info.Address, WorkerID: &w.cfg.ID, Error: &empty, LastActiveAt: &now})
	if err != nil {
		return w.createLost(ctx, t, err)
	}
	// Where a create's time went (BenchmarkCreateMany reads these).
	w.log.InfoContext(ctx, "sandbox made", slog.String("sandbox_id", vm.ID), slog.Duration("machine", made.Sub(began)),
		slog.Duration("ready", ready.Sub(made)), slog.Duration("store", time.Since(ready)))
	return &task.VMResult{VMID: vm.ID, Status: vm.Status, RuntimeID: vm.RuntimeID}, nil
}

// createLost handles a create whose status write err failed. When the state
// machine refused it (a delete, or the reconciler, moved the sandbox on
// meanwhile) the machine just made is destroyed and the create reports the
// status that won, without error; other errors are returned.
func (w *Worker) createLost(ctx context.Context, t *store.Task, err error) (*task.VMResult, error) {
	if !errors.Is(err, errdefs.ErrConflict) {
		return nil, err
	}
	w.discard(ctx, t.VMID)
	cur, gerr := w.store.VMGet(ctx, &store.VMGetParams{ProjectID: t.ProjectID, IDOrName: t.VMID})
	if gerr != nil {
		return nil, errors.Join(err, gerr)
	}
	w.log.InfoContext(ctx, "sandbox moved on while being created; machine removed",
		slog.String("sandbox_id", t.VMID), slog.String("status", cur.Status))
	return &task.VMResult{VMID: cur.ID, Status: cur.Status}, nil
}

// failVMCreate marks the sandbox of a finally failed create failed, unless
// something else (a delete) has moved it on.
func (w *Worker) failVMCreate(ctx context.Context, t *store.Task, _ task.VMCreateArgs, msg string) error {
	failed := store.VMFailed
	_, err := w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: t.VMID, Status: &failed, Error: &msg,
		IfStatus: []string{store.VMCreating, store.VMRunning, store.VMPooled}})
	return ignoreConflict(err)
}

// failVMDelete marks the sandbox of a finally failed delete failed, with the
// reason, so it never stays deleting: the reconciler removes the machines of
// failed sandboxes, and a delete can be asked again.
func (w *Worker) failVMDelete(ctx context.Context, t *store.Task, _ task.VMDeleteArgs, msg string) error {
	failed, why := store.VMFailed, "delete failed: "+msg
	_, err := w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: t.VMID, Status: &failed, Error: &why,
		IfStatus: []string{store.VMDeleting}})
	return ignoreConflict(err)
}

// ignoreConflict drops a refused status move: the row moved on, which is
// what the caller wanted to settle.
func ignoreConflict(err error) error {
	if errors.Is(err, errdefs.ErrConflict) {
		return nil
	}
	return err
}

// destroy removes a sandbox's machine, best effort, even after cancellation.
func (w *Worker) destroy(ctx context.Context, id string) error {
	w.agents.Forget(id)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	return w.rt.Delete(dctx, id)
}

// discard destroys a machine nobody waits for, logging a failure: the
// reconciler removes what is left.
func (w *Worker) discard(ctx context.Context, id string) {
	warnIf(ctx, w.log, "remove machine", w.destroy(ctx, id), slog.String("sandbox_id", id))
}

// vmDelete removes the task's sandbox's machine and marks its row deleted.
func (w *Worker) vmDelete(ctx context.Context, t *store.Task, _ task.VMDeleteArgs) (*task.VMResult, error) {
	vm, err := w.store.VMGet(ctx, &store.VMGetParams{ProjectID: t.ProjectID, IDOrName: t.VMID})
	if err != nil {
		return nil, err
	}
	// A lost sandbox's delete runs on any worker: it only updates the store,
	// and the owner removes the machine when it comes back (reconciler).
	began := time.Now()
	if vm.WorkerID == "" || vm.WorkerID == w.cfg.ID {
		if err := w.destroy(ctx, vm.ID); err != nil {
			return nil, err
		}
	}
	removed := time.Now()
	deleted := store.VMDeleted
	if _, err := w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &deleted}); err != nil {
		return nil, err
	}
	// Where a delete's time went (the scale benchmarks read these).
	w.log.InfoContext(ctx, "sandbox removed", slog.String("sandbox_id", vm.ID), slog.Duration("machine", removed.Sub(began)),
		slog.Duration("store", time.Since(removed)))
	return &task.VMResult{VMID: vm.ID, Status: deleted}, nil
}

// vmExecute runs the queued command once; see previousRun.
func (w *Worker) vmExecute(ctx context.Context, t *store.Task, a task.VMExecuteArgs) (*task.ExecResult, error) {
	if done, err := w.previousRun(ctx, t); done != nil || err != nil {
		return done, err
	}
	vm, err := w.waitCreated(ctx, t.ProjectID, t.VMID)
	if err != nil {
		return nil, err
	}
	e, err := w.Exec(ctx, vm, &a.ExecParams, task.ExecRecord{TaskID: t.ID}, agentclient.ExecIO{})
	if err != nil {
		return nil, err
	}
	if e.TimedOut {
		return nil, queue.Permanent(fmt.Errorf("%w: command timed out after %ds (execution %s)", errdefs.ErrTimeout, a.TimeoutSeconds, e.ID))
	}
	return task.ExecResultOf(e), nil
}

// previousRun makes a redelivered vm:execute honest: a command that already
// finished is reported, not run again; one cut off by a crash fails rather
// than running twice.
func (w *Worker) previousRun(ctx context.Context, t *store.Task) (*task.ExecResult, error) {
	e, err := w.store.ExecutionByTask(ctx, t.ProjectID, t.ID)
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case e.CompletedAt != nil && e.Error != "":
		return nil, queue.Permanent(fmt.Errorf("%s; it was not run again", e.Error))
	case e.CompletedAt != nil:
		return task.ExecResultOf(e), nil
	}
	return nil, queue.Permanent(errors.New(crashReason + "; it was not run again"))
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

// jobRun runs a job's commands in order, stopping at the first that fails.
// A job cut off by a crash is not resumed: that could run a command twice.
func (w *Worker) jobRun(ctx context.Context, t *store.Task, a task.JobRunArgs) (*task.JobResult, error) {
	job, err := w.store.JobGet(ctx, &store.JobGetParams{ID: a.JobID})
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
		w.setProgress(ctx, t.ID, fmt.Sprintf("command %d/%d", i+1, len(job.Commands)))
		e, err := w.Exec(ctx, vm, &task.ExecParams{Command: job.Commands[i]}, task.ExecRecord{TaskID: t.ID, JobID: job.ID}, agentclient.ExecIO{})
		if err != nil {
			return nil, err
		}
		if e.ExitCode == nil || *e.ExitCode != 0 {
			msg := fmt.Sprintf("command %d (%q) failed: %s", i+1, job.Commands[i], describeExit(e))
			if _, err := w.store.JobUpdate(ctx, &store.JobUpdateParams{ID: job.ID, Status: store.JobFailed, Error: &msg}); err != nil {
				return nil, err // final (no retries): failJobRun tries again
			}
			w.jobEnded(ctx, job, a)
			return &task.JobResult{JobID: job.ID, Status: store.JobFailed, Executed: i + 1}, nil
		}
	}
	if _, err := w.store.JobUpdate(ctx, &store.JobUpdateParams{ID: job.ID, Status: store.JobSucceeded}); err != nil {
		return nil, err
	}
	w.jobEnded(ctx, job, a)
	return &task.JobResult{JobID: job.ID, Status: store.JobSucceeded, Executed: len(job.Commands)}, nil
}

// failJobRun marks the job of a finally failed job:run failed.
func (w *Worker) failJobRun(ctx context.Context, _ *store.Task, a task.JobRunArgs, msg string) error {
	job, err := w.store.JobUpdate(ctx, &store.JobUpdateParams{ID: a.JobID, Status: store.JobFailed, Error: &msg})
	if err != nil {
		return err
	}
	w.jobEnded(ctx, job, a)
	return nil
}

// jobEnded submits what follows a job that ended: an integration:report
// task for each of its reports, and the deletion of its sandbox when the
// job had it to itself (a job an integration started). Failures are
// logged: the job's outcome stands either way.
func (w *Worker) jobEnded(ctx context.Context, job *store.Job, a task.JobRunArgs) {
	for _, r := range a.Reports {
		w.submit(ctx, task.IntegrationReportArgs{Report: r, JobID: job.ID, Phase: task.PhaseFinished},
			&task.SubmitParams{ProjectID: job.ProjectID})
	}
	if !a.DeleteVM {
		return
	}
	deleting := store.VMDeleting
	vm, err := w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: job.VMID, Status: &deleting})
	if err != nil {
		warnIf(ctx, w.log, "delete a job's sandbox", err, slog.String("sandbox_id", job.VMID))
		return
	}
	w.submit(ctx, task.VMDeleteArgs{Reason: "its job " + job.ID + " ended"}, &task.SubmitParams{ProjectID: job.ProjectID,
		VMID: vm.ID, Route: vm.WorkerID})
}

// integrationReport delivers a report through the configured integrations.
func (w *Worker) integrationReport(ctx context.Context, _ *store.Task, a task.IntegrationReportArgs) (*struct{}, error) {
	if w.cfg.Integrations == nil {
		return nil, errdefs.FailedPrecondition("integrations are not configured on worker %s", w.cfg.ID)
	}
	return nil, w.cfg.Integrations.Report(ctx, &a)
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

// imageBuild builds a Debian image into this worker's Docker.
func (w *Worker) imageBuild(ctx context.Context, t *store.Task, a task.ImageBuildArgs) (*task.ImageBuildResult, error) {
	if w.images == nil {
		return nil, errdefs.FailedPrecondition("this worker's runtime does not build Docker images")
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	var last time.Time
	res, err := w.images.Build(ctx, image.Spec(a), func(line string) {
		// Progress lines come fast; the row is updated at most 4 times a second.
		if time.Since(last) > 250*time.Millisecond || !strings.HasPrefix(line, "I: ") {
			last = time.Now()
			w.setProgress(ctx, t.ID, line)
		}
	})
	if err != nil {
		return nil, err
	}
	return &task.ImageBuildResult{Ref: res.Ref, ID: res.ID, Cached: res.Cached}, nil
}

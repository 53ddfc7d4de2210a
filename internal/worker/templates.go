package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// TemplateImage is the image reference a template is committed to.
func TemplateImage(name, hash string) string { return "aetherium/template-" + name + ":" + hash }

// templateBuild makes a template: a build sandbox (the task's VM) from the
// base image, its tools installed through the recipes, the setup commands
// run, its filesystem committed to the template image; then the build
// sandbox is removed.
func (w *Worker) templateBuild(ctx context.Context, t *store.Task, a task.TemplateBuildArgs) (*task.TemplateResult, error) {
	tpl, err := w.store.TemplateGet(ctx, &store.TemplateGetParams{ProjectID: t.ProjectID, IDOrName: a.TemplateID})
	if err != nil {
		return nil, err
	}
	if tpl.Status == store.TemplateReady {
		return &task.TemplateResult{Template: tpl.Name, Image: tpl.Image, ToolsInstalled: tpl.ToolsInstalled}, nil
	}
	committer, ok := w.rt.(sandbox.Committer)
	if !ok {
		return nil, errdefs.FailedPrecondition("this worker's runtime cannot build templates")
	}
	var spec task.TemplateSpec
	if err := json.Unmarshal(tpl.Spec, &spec); err != nil {
		return nil, errdefs.InvalidArgument("template %s has a bad spec: %v", tpl.Name, err)
	}
	steps, err := w.cfg.Tools.Plan(spec.Tools, spec.ToolVersions)
	if err != nil {
		return nil, queue.Permanent(err)
	}
	vm, err := w.startBuildSandbox(ctx, t)
	if err != nil {
		return nil, err
	}
	defer w.retire(context.WithoutCancel(ctx), vm.ID)
	installed, err := w.installTools(ctx, t, vm, steps)
	if err != nil {
		return nil, err
	}
	if err := w.runSetup(ctx, t, vm, spec.Setup); err != nil {
		return nil, err
	}
	w.setProgress(ctx, t.ID, "saving the template image")
	ref := TemplateImage(tpl.Name, tpl.SpecHash)
	if err := w.commit(ctx, committer, vm, ref); err != nil {
		return nil, fmt.Errorf("commit template image: %w", err)
	}
	if _, err := w.store.TemplateUpdate(ctx, &store.TemplateUpdateParams{ID: tpl.ID, Status: store.TemplateReady,
		Image: &ref, ToolsInstalled: installed}); err != nil {
		return nil, err
	}
	return &task.TemplateResult{Template: tpl.Name, Image: ref, ToolsInstalled: installed}, nil
}

// failTemplateBuild marks the template of a finally failed build failed.
func (w *Worker) failTemplateBuild(ctx context.Context, _ *store.Task, a task.TemplateBuildArgs, msg string) error {
	return w.failTemplate(ctx, a.TemplateID, msg)
}

// failTemplate marks a template failed with msg.
func (w *Worker) failTemplate(ctx context.Context, id, msg string) error {
	_, err := w.store.TemplateUpdate(ctx, &store.TemplateUpdateParams{ID: id, Status: store.TemplateFailed, Error: &msg})
	return err
}

// commit saves the sandbox's filesystem as the image ref, syncing a running
// sandbox first (see sandbox.Committer).
func (w *Worker) commit(ctx context.Context, committer sandbox.Committer, vm *store.VM, ref string) error {
	if vm.Status != store.VMPaused {
		c, err := w.agent(ctx, vm)
		if err != nil {
			return err
		}
		exit, err := c.Exec(ctx, &agentproto.ExecRequest{Argv: []string{"sync"}, TimeoutMS: 60_000}, agentclient.ExecIO{})
		if err != nil {
			return fmt.Errorf("sync before commit: %w", err)
		}
		if exit.ExitCode != 0 {
			return fmt.Errorf("sync before commit exited %d", exit.ExitCode)
		}
	}
	_, err := committer.Commit(ctx, vm.ID, ref)
	return err
}

// startBuildSandbox creates and starts the task's build sandbox.
func (w *Worker) startBuildSandbox(ctx context.Context, t *store.Task) (*store.VM, error) {
	vm, err := w.store.VMGet(ctx, &store.VMGetParams{ProjectID: t.ProjectID, IDOrName: t.VMID})
	if err != nil {
		return nil, err
	}
	w.setProgress(ctx, t.ID, "starting the build sandbox")
	info, err := w.rt.Create(ctx, &sandbox.Spec{ID: vm.ID, Name: vm.Name, Image: vm.Image, VCPUs: vm.VCPUs, MemoryMB: vm.MemoryMB,
		Egress: w.cfg.DefaultEgress}) // builds install tools: the default policy, not the template's
	if err == nil {
		_, err = w.agent(ctx, vm)
	}
	if err != nil {
		w.discard(ctx, vm.ID)
		return nil, err
	}
	running := store.VMRunning
	return w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &running, RuntimeID: &info.RuntimeID,
		IPAddress: &info.Address, WorkerID: &w.cfg.ID})
}

// retire removes a build or pool sandbox; its row stays, deleted, with its
// history. Failures are logged: the reconciler removes a leftover machine.
func (w *Worker) retire(ctx context.Context, vmID string) {
	w.discard(ctx, vmID)
	deleted := store.VMDeleted
	_, err := w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vmID, Status: &deleted})
	warnIf(ctx, w.log, "mark retired sandbox deleted", err, slog.String("sandbox_id", vmID))
}

func (w *Worker) runSetup(ctx context.Context, t *store.Task, vm *store.VM, setup []string) error {
	for i, cmd := range setup {
		w.setProgress(ctx, t.ID, fmt.Sprintf("setup command %d/%d", i+1, len(setup)))
		errOut := newTail(4096)
		e, err := w.Exec(ctx, vm, &task.ExecParams{Command: cmd}, task.ExecRecord{TaskID: t.ID}, agentclient.ExecIO{Stderr: errOut})
		if err != nil {
			return err
		}
		if e.ExitCode == nil || *e.ExitCode != 0 {
			return queue.Permanent(fmt.Errorf("setup command %d (%q) failed: %s: %s", i+1, cmd, describeExit(e), lastLines(errOut.String())))
		}
	}
	return nil
}

// templateDelete removes a template's image from this worker's runtime, then
// its row. Sandboxes created from it keep running.
func (w *Worker) templateDelete(ctx context.Context, t *store.Task, a task.TemplateDeleteArgs) (*task.TemplateDeleteResult, error) {
	tpl, err := w.store.TemplateGet(ctx, &store.TemplateGetParams{ProjectID: t.ProjectID, IDOrName: a.TemplateID})
	if errors.Is(err, errdefs.ErrNotFound) {
		return &task.TemplateDeleteResult{TemplateID: a.TemplateID}, nil // already gone
	}
	if err != nil {
		return nil, err
	}
	if err := w.drainPool(ctx, tpl.ID); err != nil {
		return nil, err
	}
	if rm, ok := w.rt.(sandbox.ImageRemover); ok && tpl.Image != "" {
		if err := rm.RemoveImage(ctx, tpl.Image); err != nil {
			return nil, err
		}
	}
	if err := w.store.TemplateDelete(ctx, &store.TemplateGetParams{ProjectID: t.ProjectID, IDOrName: tpl.ID}); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	return &task.TemplateDeleteResult{TemplateID: tpl.ID, Image: tpl.Image}, nil
}

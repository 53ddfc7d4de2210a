package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/tools"
)

// TemplateSpec is what a template is built from.
type TemplateSpec struct {
	// Base is the image the template starts from.
	Base         string            `json:"base"`
	Tools        []string          `json:"tools,omitempty"`
	ToolVersions map[string]string `json:"tool_versions,omitempty"`
	// Setup commands run in order through /bin/sh -c after the tools.
	Setup []string `json:"setup,omitempty"`
}

// Hash identifies the spec: same hash, same template (the cache key).
func (s *TemplateSpec) Hash(steps []tools.Step) string {
	var specs []string
	for _, st := range steps {
		specs = append(specs, st.Spec())
	}
	b, _ := json.Marshal(struct {
		Base  string
		Steps []string
		Setup []string
	}{s.Base, specs, s.Setup})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

// TemplateImage is the image reference a template is committed to.
func TemplateImage(name, hash string) string { return "aetherium/template-" + name + ":" + hash }

// TemplatePayload is the payload of template:build tasks.
type TemplatePayload struct {
	TemplateID string `json:"template_id"`
}

// TemplateResult is the result of a template:build task.
type TemplateResult struct {
	Template       string            `json:"template"`
	Image          string            `json:"image"`
	ToolsInstalled map[string]string `json:"tools_installed"`
}

// templateBuild makes a template: a build sandbox (the task's VM) from the
// base image, its tools installed through the recipes, the setup commands
// run, its filesystem committed to the template image; then the build
// sandbox is removed.
func (w *Worker) templateBuild(ctx context.Context, task *store.Task) (any, error) {
	var p TemplatePayload
	if err := json.Unmarshal(task.Payload, &p); err != nil {
		return nil, queue.Permanent(fmt.Errorf("bad payload: %w", err))
	}
	tpl, err := w.store.TemplateGet(ctx, &store.TemplateGetParams{ProjectID: task.ProjectID, IDOrName: p.TemplateID})
	if err != nil {
		return nil, err
	}
	if tpl.Status == store.TemplateReady {
		return &TemplateResult{Template: tpl.Name, Image: tpl.Image, ToolsInstalled: tpl.ToolsInstalled}, nil
	}
	committer, ok := w.rt.(sandbox.Committer)
	if !ok {
		return nil, errdefs.FailedPrecondition("this worker's runtime cannot build templates")
	}
	var spec TemplateSpec
	json.Unmarshal(tpl.Spec, &spec)
	steps, err := w.cfg.Tools.Plan(spec.Tools, spec.ToolVersions)
	if err != nil {
		return nil, queue.Permanent(err)
	}
	vm, err := w.startBuildSandbox(ctx, task)
	if err != nil {
		return nil, err
	}
	defer w.retire(context.WithoutCancel(ctx), vm.ID)
	installed, err := w.installTools(ctx, task, vm, steps)
	if err != nil {
		return nil, err
	}
	if err := w.runSetup(ctx, task, vm, spec.Setup); err != nil {
		return nil, err
	}
	w.setProgress(ctx, task.ID, "saving the template image")
	ref := TemplateImage(tpl.Name, tpl.SpecHash)
	if err := w.commit(ctx, committer, vm, ref); err != nil {
		return nil, fmt.Errorf("commit template image: %w", err)
	}
	if _, err := w.store.TemplateUpdate(ctx, &store.TemplateUpdateParams{ID: tpl.ID, Status: store.TemplateReady,
		Image: &ref, ToolsInstalled: installed}); err != nil {
		return nil, err
	}
	return &TemplateResult{Template: tpl.Name, Image: ref, ToolsInstalled: installed}, nil
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
func (w *Worker) startBuildSandbox(ctx context.Context, task *store.Task) (*store.VM, error) {
	vm, err := w.store.VMGet(ctx, &store.VMGetParams{ProjectID: task.ProjectID, IDOrName: task.VMID})
	if err != nil {
		return nil, err
	}
	w.setProgress(ctx, task.ID, "starting the build sandbox")
	info, err := w.rt.Create(ctx, &sandbox.Spec{ID: vm.ID, Name: vm.Name, Image: vm.Image, VCPUs: vm.VCPUs, MemoryMB: vm.MemoryMB})
	if err == nil {
		_, err = w.agent(ctx, vm)
	}
	if err != nil {
		w.destroy(ctx, vm.ID)
		return nil, err
	}
	running := store.VMRunning
	return w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &running, RuntimeID: &info.RuntimeID,
		IPAddress: &info.Address, WorkerID: &w.cfg.ID})
}

// retire removes a build sandbox; its row stays, deleted, with its history.
func (w *Worker) retire(ctx context.Context, vmID string) {
	w.destroy(ctx, vmID)
	deleted := store.VMDeleted
	w.store.VMUpdate(ctx, &store.VMUpdateParams{ID: vmID, Status: &deleted})
}

func (w *Worker) runSetup(ctx context.Context, task *store.Task, vm *store.VM, setup []string) error {
	for i, cmd := range setup {
		w.setProgress(ctx, task.ID, fmt.Sprintf("setup command %d/%d", i+1, len(setup)))
		var errOut strings.Builder
		e, err := w.Exec(ctx, vm, &ExecParams{Command: cmd}, ExecRecord{TaskID: task.ID}, agentclient.ExecIO{Stderr: &tailWriter{&errOut}})
		if err != nil {
			return err
		}
		if e.ExitCode == nil || *e.ExitCode != 0 {
			return queue.Permanent(fmt.Errorf("setup command %d (%q) failed: %s: %s", i+1, cmd, describeExit(e), lastLines(errOut.String())))
		}
	}
	return nil
}

// tailWriter keeps the last 4 KiB written to a strings.Builder.
type tailWriter struct{ b *strings.Builder }

func (t *tailWriter) Write(p []byte) (int, error) {
	t.b.Write(p)
	if s := t.b.String(); len(s) > 4096 {
		t.b.Reset()
		t.b.WriteString(s[len(s)-4096:])
	}
	return len(p), nil
}

// TemplateSteps drops the steps a template already baked in at a version the
// request accepts, so creating from a template with all requested tools
// installs nothing.
func TemplateSteps(steps []tools.Step, baked map[string]string) []tools.Step {
	var out []tools.Step
	for _, st := range steps {
		v, ok := baked[st.Recipe.Name]
		if ok && (st.Version == "" || v == st.Version || strings.HasPrefix(v, st.Version+".")) {
			continue
		}
		out = append(out, st)
	}
	return out
}

// templateDelete removes a template's image from this worker's runtime, then
// its row. Sandboxes created from it keep running.
func (w *Worker) templateDelete(ctx context.Context, task *store.Task) (any, error) {
	var p TemplatePayload
	if err := json.Unmarshal(task.Payload, &p); err != nil {
		return nil, queue.Permanent(fmt.Errorf("bad payload: %w", err))
	}
	tpl, err := w.store.TemplateGet(ctx, &store.TemplateGetParams{ProjectID: task.ProjectID, IDOrName: p.TemplateID})
	if errors.Is(err, errdefs.ErrNotFound) {
		return map[string]string{"template_id": p.TemplateID}, nil // already gone
	}
	if err != nil {
		return nil, err
	}
	w.drainPool(ctx, tpl.ID)
	if rm, ok := w.rt.(sandbox.ImageRemover); ok && tpl.Image != "" {
		if err := rm.RemoveImage(ctx, tpl.Image); err != nil {
			return nil, err
		}
	}
	if err := w.store.TemplateDelete(ctx, &store.TemplateGetParams{ProjectID: task.ProjectID, IDOrName: tpl.ID}); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	return map[string]string{"template_id": tpl.ID, "image": tpl.Image}, nil
}

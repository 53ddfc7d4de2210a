package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// maxBundle bounds the git bundle read from a sandbox onto the host.
const maxBundle = 256 << 20

// bundleTimeout bounds the sandbox's git bundle create.
const bundleTimeout = 5 * 60 * 1000 // ms

// integrationArtifact reads the git work at a.Path of the task's sandbox as
// a bundle and hands it to the integration, which pushes it and opens a
// pull request. The sandbox gets no credential: it only runs git bundle.
func (w *Worker) integrationArtifact(ctx context.Context, t *store.Task, a task.IntegrationArtifactArgs) (*task.ArtifactResult, error) {
	if w.cfg.Integrations == nil {
		return nil, errdefs.FailedPrecondition("integrations are not configured on worker %s", w.cfg.ID)
	}
	if err := a.Validate(); err != nil {
		return nil, queue.Permanent(err)
	}
	vm, err := w.store.VMGet(ctx, &store.VMGetParams{ProjectID: t.ProjectID, IDOrName: t.VMID})
	if err != nil {
		return nil, err
	}
	if vm.Status != store.VMRunning {
		return nil, queue.Permanent(errdefs.FailedPrecondition("sandbox %s is %s, not running", vm.Name, vm.Status))
	}
	bundle, err := w.readBundle(ctx, vm, a.Path)
	if err != nil {
		return nil, err
	}
	defer os.Remove(bundle)
	return w.cfg.Integrations.CreateArtifact(ctx, &a, bundle)
}

// readBundle runs git bundle create of HEAD at dir in vm and streams it into
// a host temp file, at most maxBundle bytes; it returns the file's path.
func (w *Worker) readBundle(ctx context.Context, vm *store.VM, dir string) (string, error) {
	client, err := w.agent(ctx, vm)
	if err != nil {
		return "", err
	}
	defer w.begin(ctx, vm)()
	f, err := os.CreateTemp("", "aether-bundle-*.git")
	if err != nil {
		return "", err
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out, stderr := &cappedWriter{w: f, max: maxBundle, cancel: cancel}, newCapture(4096)
	exit, err := client.Exec(cctx, &agentproto.ExecRequest{Argv: []string{"git", "-C", dir, "bundle", "create", "-", "HEAD"},
		TimeoutMS: bundleTimeout}, agentclient.ExecIO{Stdout: out, Stderr: stderr})
	err = errors.Join(err, f.Close())
	switch {
	case out.over:
		err = queue.Permanent(errdefs.InvalidArgument("the git bundle of %s in sandbox %s is over %d MiB", dir, vm.Name, maxBundle>>20))
	case errors.Is(err, errdefs.ErrNotFound):
		err = queue.Permanent(errdefs.FailedPrecondition("git is not installed in sandbox %s", vm.Name))
	case err == nil && (exit.Signal != "" || exit.ExitCode != 0):
		err = queue.Permanent(errdefs.FailedPrecondition("git bundle create in %s of sandbox %s: exit %d %s: %s", dir, vm.Name,
			exit.ExitCode, exit.Signal, stderr.String()))
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// cappedWriter writes to w until max bytes; the write that would pass max
// fails, marks over and calls cancel (which ends the command).
type cappedWriter struct {
	w      io.Writer
	n, max int64
	over   bool
	cancel context.CancelFunc
}

func (c *cappedWriter) Write(p []byte) (int, error) {
	if c.over || c.n+int64(len(p)) > c.max {
		c.over = true
		c.cancel()
		return 0, fmt.Errorf("output over %d bytes", c.max)
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

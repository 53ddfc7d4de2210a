package worker

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
	"github.com/aetherium/aetherium/internal/tools"
)

// installedPrefix starts the line an installer prints last: the version it
// installed.
const installedPrefix = "AETHER_INSTALLED="

// installTools runs the steps in order in the sandbox, showing progress on
// the task, and returns what each installed (tool -> exact version). Each
// install and verify is recorded as an execution. A failure names the tool,
// the version and the tail of the installer's output, and is final: retrying
// a broken recipe or a missing version does not help.
func (w *Worker) installTools(ctx context.Context, t *store.Task, vm *store.VM, steps []tools.Step) (map[string]string, error) {
	installed := map[string]string{}
	for i, st := range steps {
		w.setProgress(ctx, t.ID, fmt.Sprintf("installing %s (%d/%d)", st.Spec(), i+1, len(steps)))
		v, err := w.installOne(ctx, t, vm, st)
		if err != nil {
			return installed, queue.Permanent(fmt.Errorf("installing %s failed: %w", st.Spec(), err))
		}
		installed[st.Recipe.Name] = v
	}
	if len(steps) > 0 {
		w.setProgress(ctx, t.ID, fmt.Sprintf("installed %d tools", len(steps)))
	}
	return installed, nil
}

func (w *Worker) installOne(ctx context.Context, t *store.Task, vm *store.VM, st tools.Step) (string, error) {
	deadline := time.Now().Add(st.Recipe.Timeout)
	// Installer output is the guest's: keep only the version line and the
	// tail of stderr, never the whole stream.
	out, errTail := &lineMatch{prefix: installedPrefix}, newTail(4096)
	rec := task.ExecRecord{TaskID: t.ID}
	e, err := w.Exec(ctx, vm, &task.ExecParams{Command: "bash", Args: []string{"-c", st.Script()},
		TimeoutSeconds: int(st.Recipe.Timeout.Seconds())}, rec, agentclient.ExecIO{Stdout: out, Stderr: errTail})
	if err != nil {
		return "", err
	}
	switch {
	case e.TimedOut:
		return "", fmt.Errorf("%w: timed out after %s; output: %s", errdefs.ErrTimeout, st.Recipe.Timeout, lastLines(errTail.String()))
	case e.ExitCode == nil || *e.ExitCode != 0:
		return "", fmt.Errorf("installer %s: %s", describeExit(e), lastLines(errTail.String()))
	}
	version := out.matched
	if version == "" {
		return "", fmt.Errorf("installer did not report the installed version (AETHER_INSTALLED=…)")
	}
	vout := newTail(4096)
	ve, err := w.Exec(ctx, vm, &task.ExecParams{Command: "bash", Args: []string{"-lc", st.Recipe.Verify},
		TimeoutSeconds: max(1, int(time.Until(deadline).Seconds()))}, rec, agentclient.ExecIO{Stdout: vout, Stderr: vout})
	if err != nil {
		return "", err
	}
	if ve.ExitCode == nil || *ve.ExitCode != 0 || !strings.Contains(vout.String(), version) {
		return "", fmt.Errorf("verification %q printed %q, which does not show version %s", st.Recipe.Verify, strings.TrimSpace(vout.String()), version)
	}
	return version, nil
}

// lastLines is the end of an installer's output, for error messages.
func lastLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return "(no output)"
	}
	return strings.Join(lines, "\n")
}

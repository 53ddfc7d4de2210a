package e2e_test

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/store"
)

// TestTemplates builds a template with tools and a setup command once,
// checks the second build is a cache hit, creates 5 sandboxes from it at once
// (all have the tools, none installs anything), and deletes it.
func TestTemplates(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	req := &client.TemplateRequest{Name: "node-tpl", Tools: []string{"nodejs@20.11", "bun@1.1"},
		Setup: []string{"echo prepared > /etc/prepared"}}
	acc, err := e.c.CreateTemplate(ctx(t), req)
	if err != nil || acc.Cached {
		t.Fatalf("first build: %+v %v", acc, err)
	}
	if task := e.mustWait(acc.TaskID); task.Status != store.TaskSucceeded {
		t.Fatalf("template build: %s %s", task.Status, task.Error)
	}
	tpl, err := e.c.GetTemplate(ctx(t), "node-tpl")
	if err != nil || tpl.Status != store.TemplateReady || tpl.ToolsInstalled["nodejs"] != "20.11.1" || !strings.HasPrefix(tpl.ToolsInstalled["bun"], "1.1.") {
		t.Fatalf("template = %+v, %v", tpl, err)
	}

	again, err := e.c.CreateTemplate(ctx(t), req)
	if err != nil || !again.Cached || again.Status != store.TemplateReady || again.TaskID != "" {
		t.Errorf("second build of the same spec: %+v %v, want a cache hit without a task", again, err)
	}
	req2 := *req
	req2.Setup = []string{"echo other"}
	if _, err := e.c.CreateTemplate(ctx(t), &req2); err == nil || !strings.Contains(err.Error(), "another spec") {
		t.Errorf("same name, other spec: %v, want 409", err)
	}

	var wg sync.WaitGroup
	vms := make([]*apiv1.VM, 5)
	for i := range vms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vms[i] = e.MustCreateVM(&client.CreateVMRequest{Name: fmt.Sprintf("from-tpl-%d", i), Template: "node-tpl",
				AdditionalTools: []string{"nodejs@20"}})
		}()
	}
	wg.Wait()
	for _, vm := range vms {
		if vm == nil {
			t.FailNow()
		}
		if execs, _ := e.c.Executions(ctx(t), vm.Name); len(execs) != 0 {
			t.Errorf("%s: %d executions before use; a create from a template with the tools must install nothing", vm.Name, len(execs))
		}
		if vm.ToolsInstalled["nodejs"] != "20.11.1" || vm.Template != tpl.ID {
			t.Errorf("%s: tools_installed %v template %q", vm.Name, vm.ToolsInstalled, vm.Template)
		}
		out, code := e.MustExec(vm.Name, "node --version; bun --version; cat /etc/prepared")
		if code != 0 || !strings.HasPrefix(out, "v20.11.1\n1.1.") || !strings.HasSuffix(out, "prepared\n") {
			t.Errorf("%s: %q exit %d", vm.Name, out, code)
		}
	}

	del, err := e.c.DeleteTemplate(ctx(t), "node-tpl")
	if err != nil {
		t.Fatal(err)
	}
	if task := e.mustWait(del.TaskID); task.Status != store.TaskSucceeded {
		t.Fatalf("delete template: %s", task.Error)
	}
	if exec.Command("docker", "image", "inspect", tpl.Image).Run() == nil {
		t.Errorf("template image %s still exists after delete", tpl.Image)
	}
	if _, err := e.c.GetTemplate(ctx(t), "node-tpl"); !client.IsNotFound(err) {
		t.Errorf("template after delete: %v", err)
	}
	if out, code := e.MustExec(vms[0].Name, "node --version"); code != 0 || out != "v20.11.1\n" {
		t.Errorf("sandbox outlives its template: %q %d", out, code)
	}
}

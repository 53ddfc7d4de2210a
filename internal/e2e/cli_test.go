package e2e_test

import (
	"encoding/json"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestCLIOutputAndCompletion drives the aether binary against a real
// aetherd: `vm create --wait`, every -o format of a list and a get, shell
// completion of sandbox names (asked of the server), and a bad -o refused
// with one line and a non-zero exit.
func TestCLIOutputAndCompletion(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	if out, code := e.aether("", "vm", "create", "cli-one", "--wait", "--ttl", "600"); code != 0 || !strings.Contains(out, "running") {
		t.Fatalf("vm create --wait: exit %d\n%s", code, out)
	}
	if out, code := e.aether("", "vm", "create", "cli-two", "--wait=false"); code != 0 || !strings.Contains(out, "task ") {
		t.Fatalf("vm create --wait=false: exit %d\n%s", code, out)
	}

	out, code := e.aether("", "vm", "list", "-o", "yaml")
	var vms []struct {
		Name   string `yaml:"name"`
		Status string `yaml:"status"`
	}
	if err := yaml.Unmarshal([]byte(out), &vms); code != 0 || err != nil || len(vms) != 2 {
		t.Fatalf("vm list -o yaml: exit %d, %v\n%s", code, err, out)
	}
	out, code = e.aether("", "vm", "get", "cli-one", "-o", "json")
	var vm struct{ Name, Template string }
	if err := json.Unmarshal([]byte(out), &vm); code != 0 || err != nil || vm.Name != "cli-one" {
		t.Fatalf("vm get -o json: exit %d, %v\n%s", code, err, out)
	}
	out, code = e.aether("", "vm", "list", "-o", "wide")
	if head, _, _ := strings.Cut(out, "\n"); code != 0 || !strings.Contains(head, "EXPIRES") || !strings.Contains(head, "EGRESS") {
		t.Fatalf("vm list -o wide: exit %d\n%s", code, out)
	}
	if out, _ = e.aether("", "vm", "list"); strings.Contains(out, "EXPIRES") {
		t.Errorf("vm list (table) shows the wide columns:\n%s", out)
	}

	// Cobra's hidden __complete is what the shell scripts call.
	out, code = e.aether("", "__complete", "exec", "cli-")
	if code != 0 || !strings.Contains(out, "cli-one\t") || !strings.Contains(out, "cli-two\t") {
		t.Errorf("completion of sandbox names: exit %d\n%s", code, out)
	}
	if out, _ = e.aether("", "__complete", "exec", "cli-one", ""); strings.Contains(out, "cli-two") {
		t.Errorf("exec completes a second sandbox name:\n%s", out)
	}
	if out, code = e.aether("", "completion", "bash"); code != 0 || !strings.Contains(out, "__aether") {
		t.Errorf("completion bash: exit %d", code)
	}

	out, code = e.aether("", "vm", "list", "-o", "xml")
	if code == 0 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "table, wide, json, yaml") {
		t.Errorf("bad -o: exit %d\n%s", code, out)
	}
}

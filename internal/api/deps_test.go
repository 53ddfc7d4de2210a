package api

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the API and the cluster router free of the code that runs
// tasks: neither may link the worker (the task contract is package task) nor
// the Docker SDK, so an api-only aetherd carries no runtime.
func TestDeps(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".", "../cluster").Output()
	if err != nil {
		t.Fatal(err)
	}
	forbidden := []string{"github.com/aetherium/aetherium/internal/worker", "github.com/aetherium/aetherium/internal/sandbox",
		"github.com/docker/", "github.com/moby/"}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("internal/api or internal/cluster depends on %s", dep)
			}
		}
	}
}

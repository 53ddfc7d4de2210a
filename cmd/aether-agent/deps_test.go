package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the guest agent small and static: it must not link database
// drivers, the Docker SDK, Redis clients or cgo.
func TestDeps(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as `make build` builds it
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	forbidden := []string{"modernc.org/sqlite", "github.com/jackc/pgx", "github.com/docker/", "github.com/redis/",
		"github.com/hibiken/asynq", "github.com/riverqueue/", "database/sql", "runtime/cgo", "github.com/prometheus/"}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("aether-agent depends on %s", dep)
			}
		}
	}
}

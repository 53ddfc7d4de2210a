package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aetherium/aetherium/internal/testbin"
)

// TestMigrateFlagsAfterCommand guards the bug where `aetherd migrate up
// --database-url postgres://…` ignored the flags after `up`, looked at the
// default SQLite store, printed "no change" and exited 0, so PostgreSQL was
// believed migrated when it was not. Runs the real binary against a real
// PostgreSQL schema.
func TestMigrateFlagsAfterCommand(t *testing.T) {
	t.Parallel()
	url := testbin.PostgresURL(t)
	bin := testbin.Build(t, "aetherd")
	dir := t.TempDir()
	aetherd := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("aetherd %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := aetherd("migrate", "version", "--database-url", url); got != "no migrations applied" {
		t.Fatalf("version of a fresh schema: %q", got)
	}
	aetherd("migrate", "up", "--database-url", url)
	latest := lastMigration(t)
	if got := aetherd("migrate", "version", "--database-url", url); got != latest+" (dirty: false)" {
		t.Fatalf("version after up: %q; want %s (dirty: false)", got, latest)
	}
	if _, err := os.Stat(filepath.Join(dir, "aether-data", "aether.db")); err == nil {
		t.Fatal("migrate with --database-url touched the default SQLite store")
	}
	cmd := exec.Command(bin, "migrate", "up", "--no-such-flag")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("an unknown flag after the command succeeded: %s", out)
	}
}

// lastMigration is the highest migration version shipped for PostgreSQL.
func lastMigration(t *testing.T) string {
	files, err := filepath.Glob("../../internal/store/postgres/migrations/*.up.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v", err)
	}
	v := strings.TrimLeft(strings.SplitN(filepath.Base(files[len(files)-1]), "_", 2)[0], "0")
	return v
}

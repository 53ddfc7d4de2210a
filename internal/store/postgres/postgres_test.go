package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/store/postgres"
	"github.com/aetherium/aetherium/internal/store/storetest"
	"github.com/aetherium/aetherium/internal/testbin"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := postgres.Open(context.Background(), testbin.PostgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestOldExecutionShellUnknown: an execution recorded before migration 16
// (executions.shell) reads back with Shell nil, unknown, not a made-up false
// or true; and migration 16 goes down and up again.
func TestOldExecutionShellUnknown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testbin.PostgresURL(t)
	m, err := postgres.Migrate(url)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Migrate(15); err != nil {
		t.Fatalf("migrate to 15: %v", err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, `INSERT INTO executions (id, project_id, vm_id, command, started_at) VALUES ('old', $1, 'oldvm', 'true', 1)`,
		store.DefaultProjectID)
	conn.Close(ctx)
	if err != nil {
		t.Fatalf("insert at migration 15: %v", err)
	}

	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	storetest.OldExecutionShellUnknown(t, s)
	s.Close()

	if err := m.Steps(-1); err != nil {
		t.Fatalf("migration 16 down: %v", err)
	}
	if err := m.Up(); err != nil {
		t.Fatalf("migration 16 up again: %v", err)
	}
}

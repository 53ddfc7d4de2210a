package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/store/sqlite"
	"github.com/aetherium/aetherium/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "aether.db"), "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestReopenKeepsData guards durability across a restart: the second Open of
// the same file migrates nothing and sees the first one's rows.
func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "aether.db")
	s, err := sqlite.Open(ctx, path, "")
	if err != nil {
		t.Fatal(err)
	}
	task, err := s.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: store.DefaultProjectID, Type: "vm:delete", Priority: "default"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = sqlite.Open(ctx, path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.TaskGet(ctx, &store.TaskGetParams{ID: task.ID}); err != nil {
		t.Errorf("task lost across reopen: %v", err)
	}
}

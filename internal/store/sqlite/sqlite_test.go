package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	modernc "modernc.org/sqlite"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/store/sqlite"
	"github.com/aetherium/aetherium/internal/store/sqlstore"
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

// TestGroupCommit: finishes and audit entries written at once by many
// callers (committed in groups: Dialect.GroupCommit) each return their own
// row, a finish of an unknown execution fails alone with ErrNotFound, and
// every write is there after a reopen.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "aether.db")
	s, err := sqlite.Open(ctx, path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	id := uuid.NewString()
	if _, err := s.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: store.DefaultProjectID, Type: "vm:create", Priority: "high",
		VM: &store.VMInsertParams{ID: id, Name: "g", Image: "img", Runtime: "docker", VCPUs: 1, MemoryMB: 512}}); err != nil {
		t.Fatal(err)
	}
	const n = 64
	execs := make([]*store.Execution, n)
	for i := range n {
		if execs[i], err = s.ExecutionInsert(ctx, &store.ExecutionInsertParams{ProjectID: store.DefaultProjectID, VMID: id, Command: "true"}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			code := i
			e, err := s.ExecutionFinish(ctx, &store.ExecutionFinishParams{ID: execs[i].ID, ExitCode: &code, Stdout: fmt.Sprint("out", i)})
			if err != nil || e == nil || e.ID != execs[i].ID || e.ExitCode == nil || *e.ExitCode != i || e.Stdout != fmt.Sprint("out", i) {
				t.Errorf("finish %d: got %+v, %v", i, e, err)
			}
			if _, err := s.ExecutionFinish(ctx, &store.ExecutionFinishParams{ID: uuid.NewString(), ExitCode: &code}); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("finish of an unknown execution: %v, want ErrNotFound", err)
			}
			if err := s.AuditInsert(ctx, &store.AuditInsertParams{KeyPrefix: "ae_g", ProjectID: store.DefaultProjectID, Action: "exec",
				Object: fmt.Sprint(i), Status: 200}); err != nil {
				t.Errorf("audit %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	s.Close()
	if s, err = sqlite.Open(ctx, path, ""); err != nil {
		t.Fatal(err)
	}
	list, err := s.ExecutionList(ctx, &store.ExecutionListParams{ProjectID: store.DefaultProjectID, VMID: id})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list {
		if e.ExitCode == nil || e.Stdout != fmt.Sprint("out", *e.ExitCode) {
			t.Errorf("after reopen: %+v", e)
		}
	}
	audit, err := s.AuditList(ctx, &store.AuditListParams{ProjectID: store.DefaultProjectID, Limit: 2 * n})
	if len(list) != n || len(audit) != n || err != nil {
		t.Errorf("after reopen: %d executions, %d audit entries (%v), want %d each", len(list), len(audit), err, n)
	}
}

// TestActivityTouchSkipsTheFlush: an update of a sandbox's last activity
// alone goes through the pool whose commits do not wait for the disk (the
// exec path touches a sandbox with an idle timeout twice per exec), any
// other update through the waiting pool. The waiting pool is opened read
// only here, so a write through it fails.
func TestActivityTouchSkipsTheFlush(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "aether.db")
	s, err := sqlite.Open(ctx, path, "")
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	if _, err := s.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: store.DefaultProjectID, Type: "vm:create", Priority: "high",
		VM: &store.VMInsertParams{ID: id, Name: "touch", Image: "img", Runtime: "docker", VCPUs: 1, MemoryMB: 512}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	readOnly, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	marker, err := sqlite.OpenDB(path, sqlite.SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	s = sqlstore.New(readOnly, sqlite.Dialect, marker)
	defer s.Close()
	at := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	vm, err := s.VMUpdate(ctx, &store.VMUpdateParams{ID: id, LastActiveAt: &at})
	if err != nil || vm.LastActiveAt == nil || !vm.LastActiveAt.Equal(at) {
		t.Fatalf("touch: %+v, %v", vm, err)
	}
	msg := "x"
	if _, err := s.VMUpdate(ctx, &store.VMUpdateParams{ID: id, LastActiveAt: &at, Error: &msg}); err == nil {
		t.Error("an update of more than the activity went through the pool that does not wait for the disk")
	}
}

// TestOldExecutionShellUnknown: an execution recorded before migration 16
// (executions.shell) reads back with Shell nil, unknown, not a made-up false
// or true; and migration 16 goes down and up again.
func TestOldExecutionShellUnknown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "aether.db")
	m, err := sqlite.Migrate(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Migrate(15); err != nil {
		t.Fatalf("migrate to 15: %v", err)
	}
	m.Close()
	db, err := sqlite.OpenDB(path, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.ExecContext(ctx, `INSERT INTO executions (id, project_id, vm_id, command, started_at) VALUES ('old', ?, 'oldvm', 'true', 1)`,
		store.DefaultProjectID)
	db.Close()
	if err != nil {
		t.Fatalf("insert at migration 15: %v", err)
	}

	s, err := sqlite.Open(ctx, path, "")
	if err != nil {
		t.Fatal(err)
	}
	storetest.OldExecutionShellUnknown(t, s)
	s.Close()

	if m, err = sqlite.Migrate(path); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Steps(-1); err != nil {
		t.Fatalf("migration 16 down: %v", err)
	}
	if err := m.Up(); err != nil {
		t.Fatalf("migration 16 up again: %v", err)
	}
}

// TestCommitsWithFdatasync: once a database is open, the process's SQLite
// commits sync with fdatasync(2), as SQLite's own Linux builds do.
func TestCommitsWithFdatasync(t *testing.T) {
	db, err := sqlite.OpenDB(filepath.Join(t.TempDir(), "x.db"), sqlite.SyncFull)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if !modernc.FdatasyncEnabled() {
		t.Error("SQLite commits with fsync; want fdatasync")
	}
}

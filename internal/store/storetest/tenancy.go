package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
)

func testProjects(t *testing.T, s store.Store) {
	ctx := context.Background()
	p, err := s.ProjectInsert(ctx, &store.ProjectInsertParams{Name: "team-a", Quota: store.Quota{Sandboxes: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ProjectInsert(ctx, &store.ProjectInsertParams{Name: "team-a"}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("duplicate project name: %v; want ErrAlreadyExists", err)
	}
	for _, ref := range []string{p.ID, "team-a"} {
		got, err := s.ProjectGet(ctx, ref)
		if err != nil || got.ID != p.ID || got.Quota.Sandboxes != 3 {
			t.Fatalf("ProjectGet(%q) = %+v, %v", ref, got, err)
		}
	}
	up, err := s.ProjectUpdate(ctx, &store.ProjectUpdateParams{ID: p.ID, Quota: store.Quota{Sandboxes: 5, VCPUs: 8}})
	if err != nil || up.Quota.Sandboxes != 5 || up.Quota.VCPUs != 8 {
		t.Fatalf("ProjectUpdate = %+v, %v", up, err)
	}
	list, err := s.ProjectList(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("ProjectList = %d projects, %v; want default and team-a", len(list), err)
	}
	if err := s.ProjectDelete(ctx, store.DefaultProjectID); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("deleting the default project: %v; want ErrFailedPrecondition", err)
	}
	// A project with a live sandbox cannot be deleted.
	if _, err := s.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: p.ID, Type: "vm:create", Priority: "high", VM: newVM("x")}); err != nil {
		t.Fatal(err)
	}
	if err := s.ProjectDelete(ctx, p.ID); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("deleting a project with a sandbox: %v; want ErrFailedPrecondition", err)
	}
	empty, _ := s.ProjectInsert(ctx, &store.ProjectInsertParams{Name: "empty"})
	key := insertKey(t, s, empty.ID, store.RoleMember, nil)
	if err := s.ProjectDelete(ctx, empty.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.APIKeyByPrefix(ctx, key.Prefix); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a deleted project's key still exists: %v", err)
	}
	if err := s.ProjectDelete(ctx, empty.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("deleting twice: %v; want ErrNotFound", err)
	}
	if _, err := s.APIKeyInsert(ctx, &store.APIKeyInsertParams{ID: uuid.NewString(), ProjectID: empty.ID, Prefix: "p" + uuid.NewString()[:8],
		Hash: "h", Role: store.RoleMember}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a key for a deleted project: %v; want ErrNotFound", err)
	}
}

func insertKey(t *testing.T, s store.Store, projectID, role string, expires *time.Time) *store.APIKey {
	t.Helper()
	k, err := s.APIKeyInsert(context.Background(), &store.APIKeyInsertParams{ID: uuid.NewString(), ProjectID: projectID,
		Name: "k", Prefix: "ae_" + uuid.NewString()[:8], Hash: "hash-" + uuid.NewString(), Role: role, ExpiresAt: expires})
	if err != nil {
		t.Fatalf("APIKeyInsert: %v", err)
	}
	return k
}

func testAPIKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	if n, err := s.APIKeyCount(ctx); err != nil || n != 0 {
		t.Fatalf("APIKeyCount of a new store = %d, %v", n, err)
	}
	past := time.Now().Add(-time.Minute)
	admin := insertKey(t, s, store.DefaultProjectID, store.RoleAdmin, nil)
	expired := insertKey(t, s, store.DefaultProjectID, store.RoleMember, &past)
	member := insertKey(t, s, store.DefaultProjectID, store.RoleMember, nil)
	got, err := s.APIKeyByPrefix(ctx, admin.Prefix)
	if err != nil || got.Hash != admin.Hash || got.Role != store.RoleAdmin || !got.Usable(time.Now()) {
		t.Fatalf("APIKeyByPrefix = %+v, %v", got, err)
	}
	if g, _ := s.APIKeyByPrefix(ctx, expired.Prefix); g == nil || g.Usable(time.Now()) {
		t.Fatalf("expired key usable: %+v", g)
	}
	if _, err := s.APIKeyInsert(ctx, &store.APIKeyInsertParams{ID: uuid.NewString(), ProjectID: store.DefaultProjectID,
		Prefix: admin.Prefix, Hash: "x", Role: store.RoleMember}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("duplicate prefix: %v; want ErrAlreadyExists", err)
	}
	if n, _ := s.APIKeyCount(ctx); n != 2 {
		t.Fatalf("APIKeyCount = %d; want 2 (the expired key does not count)", n)
	}
	r1, err := s.APIKeyRevoke(ctx, store.DefaultProjectID, member.Prefix)
	if err != nil || r1.RevokedAt == nil || r1.Usable(time.Now()) {
		t.Fatalf("APIKeyRevoke = %+v, %v", r1, err)
	}
	r2, err := s.APIKeyRevoke(ctx, "", member.ID)
	if err != nil || !r2.RevokedAt.Equal(*r1.RevokedAt) {
		t.Fatalf("revoking twice changed the time: %v then %v (%v)", r1.RevokedAt, r2.RevokedAt, err)
	}
	other, _ := s.ProjectInsert(ctx, &store.ProjectInsertParams{Name: "other"})
	if _, err := s.APIKeyRevoke(ctx, other.ID, admin.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("revoking another project's key: %v; want ErrNotFound", err)
	}
	if n, _ := s.APIKeyCount(ctx); n != 1 {
		t.Fatalf("APIKeyCount after revoke = %d; want 1", n)
	}
	all, _ := s.APIKeyList(ctx, "")
	mine, _ := s.APIKeyList(ctx, other.ID)
	if len(all) != 3 || len(mine) != 0 {
		t.Fatalf("APIKeyList: all %d, other project %d; want 3, 0", len(all), len(mine))
	}
}

func testAudit(t *testing.T, s store.Store) {
	ctx := context.Background()
	entry := func(i int) *store.AuditInsertParams {
		project := store.DefaultProjectID
		if i%2 == 1 {
			project = "p2"
		}
		return &store.AuditInsertParams{KeyPrefix: "ae_abc", ProjectID: project,
			Action: "POST /api/v1/vms", Object: fmt.Sprintf("vm-%d", i), Status: 202}
	}
	for i := range 3 {
		if err := s.AuditInsert(ctx, entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AuditInsert(ctx, entry(3), entry(4)); err != nil { // several at once keep their order
		t.Fatal(err)
	}
	all, err := s.AuditList(ctx, &store.AuditListParams{})
	if err != nil || len(all) != 5 || all[0].Object != "vm-4" || all[1].Object != "vm-3" || all[0].At.IsZero() {
		t.Fatalf("AuditList = %d entries (first %+v), %v; want 5, newest first", len(all), all[0], err)
	}
	page, _ := s.AuditList(ctx, &store.AuditListParams{ProjectID: store.DefaultProjectID, Limit: 2})
	next, _ := s.AuditList(ctx, &store.AuditListParams{ProjectID: store.DefaultProjectID, Before: page[1].ID})
	if len(page) != 2 || page[0].Object != "vm-4" || page[1].Object != "vm-2" || len(next) != 1 || next[0].Object != "vm-0" {
		t.Fatalf("paged project audit: %+v then %+v", page, next)
	}
}

// testQuotaRace creates sandboxes concurrently against a quota: exactly the
// quota's worth succeed, the rest fail with ErrQuotaExceeded and leave no rows.
func testQuotaRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	p, err := s.ProjectInsert(ctx, &store.ProjectInsertParams{Name: "quota", Quota: store.Quota{Sandboxes: 5}})
	if err != nil {
		t.Fatal(err)
	}
	var ok, over atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, err := s.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: p.ID, Type: "vm:create", Priority: "high",
				VM: newVM(fmt.Sprintf("q%d", i))})
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, errdefs.ErrQuotaExceeded):
				over.Add(1)
			default:
				t.Errorf("create %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	vms, _ := s.VMList(ctx, &store.VMListParams{ProjectID: p.ID})
	if ok.Load() != 5 || over.Load() != 15 || len(vms) != 5 {
		t.Fatalf("20 concurrent creates against a quota of 5: %d created, %d over quota, %d rows; want 5, 15, 5",
			ok.Load(), over.Load(), len(vms))
	}
}

func testQuotaResources(t *testing.T, s store.Store) {
	ctx := context.Background()
	p, _ := s.ProjectInsert(ctx, &store.ProjectInsertParams{Name: "res", Quota: store.Quota{VCPUs: 3, MemoryMB: 2048, Templates: 1, PoolSize: 2}})
	create := func(name string, vcpus, mem int) error {
		vm := newVM(name)
		vm.VCPUs, vm.MemoryMB = vcpus, mem
		_, err := s.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: p.ID, Type: "vm:create", Priority: "high", VM: vm})
		return err
	}
	template := func(name string, pool int) error {
		_, err := s.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: p.ID, Type: "template:build", Priority: "low",
			Template: &store.TemplateInsertParams{ID: uuid.NewString(), Name: name, PoolSize: pool, Spec: []byte(`{}`), SpecHash: name}})
		return err
	}
	steps := []struct {
		name    string
		do      func() error
		wantErr bool
	}{
		{"2 vCPUs of 3", func() error { return create("a", 2, 1024) }, false},
		{"2 more vCPUs is over", func() error { return create("b", 2, 512) }, true},
		{"1 more vCPU fits", func() error { return create("c", 1, 512) }, false},
		{"memory is over", func() error { return create("d", 0, 1024) }, true},
		{"pool of 3 is over", func() error { return template("t1", 3) }, true},
		{"first template", func() error { return template("t1", 2) }, false},
		{"second template is over", func() error { return template("t2", 0) }, true},
		// Pool sandboxes count toward the pool quota, not the sandbox quota.
		{"pool sandbox", func() error { return create(store.PoolNamePrefix+"x", 1, 512) }, false},
	}
	for _, st := range steps {
		err := st.do()
		if st.wantErr != errors.Is(err, errdefs.ErrQuotaExceeded) || (!st.wantErr && err != nil) {
			t.Fatalf("%s: err %v; want quota exceeded: %v", st.name, err, st.wantErr)
		}
	}
}

// testExecutionOutputIsBinary guards the bug where, on PostgreSQL, a NUL
// byte, invalid UTF-8 or a character cut at the output cap failed the write,
// leaving the execution "running" after its command had run.
func testExecutionOutputIsBinary(t *testing.T, s store.Store) {
	ctx := context.Background()
	vm, task := createVM(t, s, "binvm")
	outputs := []string{"nul\x00byte", "bad \xff\xfe utf-8", "cut \xf0\x9f\x98", "\x00"}
	for _, out := range outputs {
		e, err := s.ExecutionInsert(ctx, &store.ExecutionInsertParams{ProjectID: store.DefaultProjectID, VMID: vm.ID,
			TaskID: task.ID, Command: "cat"})
		if err != nil {
			t.Fatal(err)
		}
		code := 0
		f, err := s.ExecutionFinish(ctx, &store.ExecutionFinishParams{ID: e.ID, ExitCode: &code, Stdout: out, Stderr: out})
		if err != nil || f.Stdout != out || f.Stderr != out {
			t.Fatalf("ExecutionFinish(%q) = %q, %q, %v", out, f.Stdout, f.Stderr, err)
		}
		got, err := s.ExecutionByTask(ctx, store.DefaultProjectID, task.ID)
		if err != nil || got.ID != e.ID || got.Stdout != out {
			t.Fatalf("ExecutionByTask after %q = %+v, %v; want the latest run, byte for byte", out, got, err)
		}
	}
	if _, err := s.ExecutionByTask(ctx, "other-project", task.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("another project's execution by task: %v; want ErrNotFound", err)
	}
}

func testHistoryPrune(t *testing.T, s store.Store) {
	ctx := context.Background()
	vm, create := createVM(t, s, "prunevm")
	done, _ := s.ExecutionInsert(ctx, &store.ExecutionInsertParams{ProjectID: store.DefaultProjectID, VMID: vm.ID, Command: "old"})
	code := 0
	s.ExecutionFinish(ctx, &store.ExecutionFinishParams{ID: done.ID, ExitCode: &code})
	running, _ := s.ExecutionInsert(ctx, &store.ExecutionInsertParams{ProjectID: store.DefaultProjectID, VMID: vm.ID, Command: "running"})
	if _, err := s.TaskUpdate(ctx, &store.TaskUpdateParams{ID: create.ID, Status: store.TaskRunning}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TaskUpdate(ctx, &store.TaskUpdateParams{ID: create.ID, Status: store.TaskSucceeded}); err != nil {
		t.Fatal(err)
	}
	pending, _ := s.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: store.DefaultProjectID, Type: "vm:delete", Priority: "critical", VMID: vm.ID})
	s.AuditInsert(ctx, &store.AuditInsertParams{KeyPrefix: "ae_x", ProjectID: store.DefaultProjectID, Action: "GET /", Status: 200})

	if n, err := s.HistoryPrune(ctx, time.Now().Add(-time.Hour), 100); err != nil || n != 0 {
		t.Fatalf("pruning before an hour ago deleted %d, %v; want 0", n, err)
	}
	var total int64
	for {
		n, err := s.HistoryPrune(ctx, time.Now().Add(time.Second), 1)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total != 3 {
		t.Fatalf("pruned %d rows; want 3 (the finished execution, the finished task, the audit entry)", total)
	}
	list, _ := s.ExecutionList(ctx, &store.ExecutionListParams{ProjectID: store.DefaultProjectID, VMID: vm.ID})
	if len(list) != 1 || list[0].ID != running.ID {
		t.Fatalf("executions after prune: %+v; want only the running one", list)
	}
	if _, err := s.TaskGet(ctx, &store.TaskGetParams{ID: pending.ID}); err != nil {
		t.Fatalf("the pending task was pruned: %v", err)
	}
	if _, err := s.TaskGet(ctx, &store.TaskGetParams{ID: create.ID}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("the finished task survived: %v", err)
	}
}

// testWebhookDeliveries: a delivery is recorded once per integration (a
// redelivery or replay is ErrAlreadyExists, the same ID at another
// integration is not), and HistoryPrune removes old deliveries.
func testWebhookDeliveries(t *testing.T, s store.Store) {
	ctx := context.Background()
	first := &store.WebhookDeliveryInsertParams{Integration: "github", DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
		Event: "push", ProjectID: store.DefaultProjectID}
	if err := s.WebhookDeliveryInsert(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := s.WebhookDeliveryInsert(ctx, first); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second insert of one delivery: %v; want ErrAlreadyExists", err)
	}
	if err := s.WebhookDeliveryDelete(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := s.WebhookDeliveryInsert(ctx, first); err != nil {
		t.Fatalf("insert after the delivery was forgotten: %v; want accepted", err)
	}
	other := *first
	other.Integration = "slack"
	if err := s.WebhookDeliveryInsert(ctx, &other); err != nil {
		t.Fatalf("the same delivery ID at another integration: %v; want accepted", err)
	}
	if err := s.WebhookDeliveryInsert(ctx, &store.WebhookDeliveryInsertParams{Integration: "github"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("insert without a delivery ID: %v; want ErrInvalidArgument", err)
	}
	if n, err := s.HistoryPrune(ctx, time.Now().Add(-time.Hour), 100); err != nil || n != 0 {
		t.Fatalf("pruning before an hour ago deleted %d, %v; want 0", n, err)
	}
	if n, err := s.HistoryPrune(ctx, time.Now().Add(time.Second), 100); err != nil || n != 2 {
		t.Fatalf("pruning now deleted %d, %v; want the 2 deliveries", n, err)
	}
	if err := s.WebhookDeliveryInsert(ctx, first); err != nil {
		t.Fatalf("a pruned delivery is new again: %v", err)
	}
}

func testPreviewTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	vm, _ := createVM(t, s, "web")
	insert := func(vmID, project string, expires time.Time) (*store.PreviewToken, error) {
		return s.PreviewTokenInsert(ctx, &store.PreviewTokenInsertParams{ID: uuid.NewString(), ProjectID: project,
			VMID: vmID, Port: 8000, Hash: "hash-" + uuid.NewString(), ExpiresAt: expires})
	}
	later := time.Now().Add(time.Hour)
	tok, err := insert(vm.ID, store.DefaultProjectID, later)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := insert(vm.ID, "other-project", later); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("token of another project's sandbox: %v; want ErrNotFound", err)
	}
	if _, err := insert("no-such-vm", store.DefaultProjectID, later); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("token of a missing sandbox: %v; want ErrNotFound", err)
	}
	got, err := s.PreviewTokenByHash(ctx, tok.Hash)
	if err != nil || got.ID != tok.ID || got.VMID != vm.ID || got.Port != 8000 || !got.ExpiresAt.Equal(later.Truncate(time.Microsecond)) {
		t.Fatalf("PreviewTokenByHash = %+v, %v; want %+v", got, err, tok)
	}
	expired, err := insert(vm.ID, store.DefaultProjectID, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if list, err := s.PreviewTokenList(ctx, store.DefaultProjectID, vm.ID); err != nil || len(list) != 2 {
		t.Fatalf("PreviewTokenList = %d tokens, %v; want 2", len(list), err)
	}
	if list, err := s.PreviewTokenList(ctx, "other-project", vm.ID); err != nil || len(list) != 0 {
		t.Fatalf("another project lists %d tokens, %v; want 0", len(list), err)
	}
	if n, err := s.HistoryPrune(ctx, time.Now(), 100); err != nil || n != 1 {
		t.Fatalf("HistoryPrune deleted %d, %v; want the expired token", n, err)
	}
	if _, err := s.PreviewTokenByHash(ctx, expired.Hash); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("pruned token found: %v", err)
	}
	if err := s.PreviewTokenDelete(ctx, "other-project", vm.ID, tok.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("another project revoked a token: %v; want ErrNotFound", err)
	}
	if err := s.PreviewTokenDelete(ctx, store.DefaultProjectID, vm.ID, tok.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.PreviewTokenDelete(ctx, store.DefaultProjectID, vm.ID, tok.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("revoking twice: %v; want ErrNotFound", err)
	}
	if _, err := s.PreviewTokenByHash(ctx, tok.Hash); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("revoked token found: %v", err)
	}
	// Deleting the sandbox deletes its tokens.
	kept, err := insert(vm.ID, store.DefaultProjectID, later)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{store.VMRunning, store.VMDeleting, store.VMDeleted} {
		if _, err := s.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &st}); err != nil {
			t.Fatalf("VMUpdate to %s: %v", st, err)
		}
	}
	if _, err := s.PreviewTokenByHash(ctx, kept.Hash); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a deleted sandbox's token survived: %v", err)
	}
	if _, err := insert(vm.ID, store.DefaultProjectID, later); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("token of a deleted sandbox: %v; want ErrNotFound", err)
	}
}

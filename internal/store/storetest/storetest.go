// Package storetest is the conformance suite every store.Store must pass.
// Implementations call Run from their tests with a constructor that returns a
// fresh, empty, migrated store.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
)

// Run runs the suite. newStore must return an independent store per call.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"VMCreateWithTask", testVMCreateWithTask},
		{"VMDuplicateNameLeavesNoRows", testVMDuplicateName},
		{"VMGetByIDOrName", testVMGet},
		{"VMDeletedFreesName", testVMDeletedFreesName},
		{"VMListExpired", testVMListExpired},
		{"TaskLifecycle", testTaskLifecycle},
		{"TaskTerminalIsFinal", testTaskTerminalIsFinal},
		{"TaskListPendingOlderThan", testTaskList},
		{"JobWithTask", testJob},
		{"Executions", testExecutions},
		{"ExecutionShell", testExecutionShell},
		{"Workers", testWorkers},
		{"WorkerLoad", testWorkerLoad},
		{"Templates", testTemplates},
		{"PoolClaimIsExclusive", testPoolClaim},
		{"NotFound", testNotFound},
		{"AddressLeases", testAddressLeases},
		{"AddressLeaseIsExclusive", testAddressLeaseExclusive},
		{"Projects", testProjects},
		{"APIKeys", testAPIKeys},
		{"Audit", testAudit},
		{"QuotaRace", testQuotaRace},
		{"WorkerRoomRace", testWorkerRoomRace},
		{"QuotaResources", testQuotaResources},
		{"ExecutionOutputIsBinary", testExecutionOutputIsBinary},
		{"HistoryPrune", testHistoryPrune},
		{"VMStateMachine", testVMStateMachine},
		{"StateRace", testStateRace},
		{"ExecutionAbandon", testExecutionAbandon},
		{"WebhookDeliveriesDeduplicated", testWebhookDeliveries},
		{"PreviewTokens", testPreviewTokens},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore(t))
		})
	}
}

func newVM(name string) *store.VMInsertParams {
	return &store.VMInsertParams{ID: uuid.NewString(), Name: name, Image: "img", Runtime: "docker", VCPUs: 1, MemoryMB: 512,
		AdditionalTools: []string{"go"}, ToolVersions: map[string]string{"go": "1.23.0"}, Egress: "10.1.0.0/16,example.com"}
}

func createVM(t *testing.T, s store.Store, name string) (*store.VM, *store.Task) {
	t.Helper()
	p := newVM(name)
	task, err := s.TaskInsert(context.Background(), &store.TaskInsertParams{ProjectID: store.DefaultProjectID,
		Type: "vm:create", Priority: "high", MaxRetries: 3, Timeout: 90 * time.Second, Payload: json.RawMessage(`{"a":1}`), VM: p})
	if err != nil {
		t.Fatalf("TaskInsert with VM: %v", err)
	}
	vm, err := s.VMGet(context.Background(), &store.VMGetParams{ProjectID: store.DefaultProjectID, IDOrName: p.ID})
	if err != nil {
		t.Fatalf("VMGet: %v", err)
	}
	return vm, task
}

func testVMCreateWithTask(t *testing.T, s store.Store) {
	vm, task := createVM(t, s, "alpha")
	if vm.Status != store.VMCreating || vm.Name != "alpha" || vm.VCPUs != 1 || vm.ToolVersions["go"] != "1.23.0" ||
		len(vm.AdditionalTools) != 1 || vm.ProjectID != store.DefaultProjectID || vm.Egress != "10.1.0.0/16,example.com" {
		t.Errorf("vm = %+v", vm)
	}
	if got, _ := s.VMGet(context.Background(), &store.VMGetParams{ProjectID: vm.ProjectID, IDOrName: vm.ID}); got == nil || got.Egress != vm.Egress {
		t.Errorf("egress read back as %+v, want %q", got, vm.Egress)
	}
	if task.VMID != vm.ID || task.Status != store.TaskPending || task.MaxRetries != 3 || task.TimeoutMS != 90000 || string(task.Payload) != `{"a":1}` {
		t.Errorf("task = %+v", task)
	}
}

func testVMDuplicateName(t *testing.T, s store.Store) {
	ctx := context.Background()
	createVM(t, s, "dup")
	id := uuid.NewString()
	_, err := s.TaskInsert(ctx, &store.TaskInsertParams{ID: id, ProjectID: store.DefaultProjectID, Type: "vm:create",
		Priority: "high", VM: newVM("dup")})
	if !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("duplicate name: err = %v, want ErrAlreadyExists", err)
	}
	if _, err := s.TaskGet(ctx, &store.TaskGetParams{ID: id}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("task of failed create exists: %v", err)
	}
	vms, _ := s.VMList(ctx, &store.VMListParams{ProjectID: store.DefaultProjectID})
	if len(vms) != 1 {
		t.Errorf("%d vms after duplicate insert, want 1", len(vms))
	}
}

func testVMGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	vm, _ := createVM(t, s, "findme")
	for _, key := range []string{vm.ID, "findme"} {
		got, err := s.VMGet(ctx, &store.VMGetParams{ProjectID: store.DefaultProjectID, IDOrName: key})
		if err != nil || got.ID != vm.ID {
			t.Errorf("VMGet(%q) = %v, %v", key, got, err)
		}
	}
	st, rid, ip := store.VMRunning, "ctr-1", "10.77.0.2"
	exp := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	got, err := s.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &st, RuntimeID: &rid, IPAddress: &ip,
		ToolsInstalled: map[string]string{"go": "1.23.4"}, ExpiresAt: &exp, LastActiveAt: &exp})
	if err != nil || got.Status != st || got.RuntimeID != rid || got.IPAddress != ip || got.Name != "findme" || got.ToolsInstalled["go"] != "1.23.4" ||
		got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) || !got.LastActiveAt.Equal(exp) || got.OnExpire != store.ExpireDelete {
		t.Errorf("VMUpdate = %+v, %v", got, err)
	}
	list, err := s.VMList(ctx, &store.VMListParams{ProjectID: store.DefaultProjectID})
	if err != nil || len(list) != 1 || list[0].Status != st {
		t.Errorf("VMList = %v, %v", list, err)
	}
	var never time.Time
	if got, _ := s.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, ExpiresAt: &never}); got == nil || got.ExpiresAt != nil {
		t.Errorf("clearing expires_at: %+v", got)
	}
}

// testVMListExpired: the expiry sweep lists only running sandboxes whose
// timeout passed or whose idle timeout ran out, not every sandbox (it runs
// every second; with 500 sandboxes a full list was its cost).
func testVMListExpired(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now()
	past, future, longAgo := now.Add(-time.Second), now.Add(time.Hour), now.Add(-10*time.Second)
	running, paused := store.VMRunning, store.VMPaused
	add := func(name string, idle int, expires, active *time.Time, status ...*string) string {
		p := newVM(name)
		p.IdleTimeoutS = idle
		if _, err := s.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: store.DefaultProjectID, Type: "vm:create",
			Priority: "high", VM: p}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.VMUpdate(ctx, &store.VMUpdateParams{ID: p.ID, ExpiresAt: expires, LastActiveAt: active}); err != nil {
			t.Fatal(err)
		}
		for _, st := range status {
			if _, err := s.VMUpdate(ctx, &store.VMUpdateParams{ID: p.ID, Status: st}); err != nil {
				t.Fatal(err)
			}
		}
		return name
	}
	want := []string{
		add("timed-out", 0, &past, &now, &running),
		add("idle-out", 5, nil, &longAgo, &running),
	}
	add("timeout-ahead", 0, &future, &now, &running)
	add("idle-recently", 3600, nil, &longAgo, &running)
	add("no-lifetime", 0, nil, &longAgo, &running)
	add("paused-timed-out", 0, &past, &now, &running, &paused)
	add("creating-timed-out", 0, &past, &now)
	vms, err := s.VMList(ctx, &store.VMListParams{ProjectID: store.AllProjects, ExpiredAt: now})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, vm := range vms {
		got = append(got, vm.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("VMList(ExpiredAt now) = %v, want %v", got, want)
	}
}

func testVMDeletedFreesName(t *testing.T, s store.Store) {
	ctx := context.Background()
	vm, _ := createVM(t, s, "reuse")
	st := store.VMDeleted
	if _, err := s.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &st}); err != nil {
		t.Fatal(err)
	}
	vm2, _ := createVM(t, s, "reuse")
	got, err := s.VMGet(ctx, &store.VMGetParams{ProjectID: store.DefaultProjectID, IDOrName: "reuse"})
	if err != nil || got.ID != vm2.ID {
		t.Errorf("name lookup after delete = %v, %v; want %s", got, err, vm2.ID)
	}
	if got, _ := s.VMGet(ctx, &store.VMGetParams{ProjectID: store.DefaultProjectID, IDOrName: vm.ID}); got == nil || got.Status != store.VMDeleted {
		t.Errorf("deleted vm by id = %v", got)
	}
	live, _ := s.VMList(ctx, &store.VMListParams{ProjectID: store.DefaultProjectID})
	all, _ := s.VMList(ctx, &store.VMListParams{ProjectID: store.DefaultProjectID, IncludeDeleted: true})
	if len(live) != 1 || len(all) != 2 {
		t.Errorf("live %d all %d, want 1 and 2", len(live), len(all))
	}
}

func testTaskLifecycle(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, task := createVM(t, s, "life")
	w, retries := "w1", 1
	got, err := s.TaskUpdate(ctx, &store.TaskUpdateParams{ID: task.ID, Status: store.TaskRunning, WorkerID: &w, RetryCount: &retries})
	if err != nil || got.Status != store.TaskRunning || got.StartedAt == nil || got.WorkerID != "w1" || got.RetryCount != 1 {
		t.Fatalf("to running = %+v, %v", got, err)
	}
	prog := "2/3"
	if got, err = s.TaskUpdate(ctx, &store.TaskUpdateParams{ID: task.ID, Status: store.TaskRunning, Progress: &prog}); err != nil || got.Progress != prog {
		t.Fatalf("progress = %+v, %v", got, err)
	}
	got, err = s.TaskUpdate(ctx, &store.TaskUpdateParams{ID: task.ID, Status: store.TaskSucceeded, Result: json.RawMessage(`{"ok":true}`)})
	if err != nil || got.Status != store.TaskSucceeded || got.CompletedAt == nil || string(got.Result) != `{"ok":true}` || !got.Terminal() {
		t.Errorf("to succeeded = %+v, %v", got, err)
	}
}

func testTaskTerminalIsFinal(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, task := createVM(t, s, "final")
	msg := "boom"
	if _, err := s.TaskUpdate(ctx, &store.TaskUpdateParams{ID: task.ID, Status: store.TaskFailed, Error: &msg}); err != nil {
		t.Fatal(err)
	}
	_, err := s.TaskUpdate(ctx, &store.TaskUpdateParams{ID: task.ID, Status: store.TaskRunning})
	if !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("update of failed task: %v, want ErrConflict", err)
	}
	got, _ := s.TaskGet(ctx, &store.TaskGetParams{ID: task.ID})
	if got.Status != store.TaskFailed || got.Error != "boom" {
		t.Errorf("task changed: %+v", got)
	}
}

func testTaskList(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, old := createVM(t, s, "old")
	time.Sleep(5 * time.Millisecond)
	cut := time.Now()
	time.Sleep(5 * time.Millisecond)
	createVM(t, s, "new")
	got, err := s.TaskList(ctx, &store.TaskListParams{Status: store.TaskPending, CreatedBefore: cut})
	if err != nil || len(got) != 1 || got[0].ID != old.ID {
		t.Errorf("TaskList older than cut = %v, %v", got, err)
	}
	all, _ := s.TaskList(ctx, &store.TaskListParams{Status: store.TaskPending})
	if len(all) != 2 {
		t.Errorf("all pending = %d, want 2", len(all))
	}
}

func testJob(t *testing.T, s store.Store) {
	ctx := context.Background()
	vm, _ := createVM(t, s, "jobvm")
	jobID := uuid.NewString()
	task, err := s.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: store.DefaultProjectID, Type: "job:run",
		Priority: "default", VMID: vm.ID, Job: &store.JobInsertParams{ID: jobID, VMID: vm.ID, Commands: []string{"a", "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	j, err := s.JobGet(ctx, &store.JobGetParams{ID: jobID, ProjectID: store.DefaultProjectID})
	if err != nil || j.TaskID != task.ID || len(j.Commands) != 2 || j.Status != store.JobPending {
		t.Fatalf("JobGet = %+v, %v", j, err)
	}
	msg := "cmd 2 exited 1"
	j, err = s.JobUpdate(ctx, &store.JobUpdateParams{ID: jobID, Status: store.JobFailed, Error: &msg})
	if err != nil || j.Status != store.JobFailed || j.CompletedAt == nil || j.Error != msg {
		t.Errorf("JobUpdate = %+v, %v", j, err)
	}
}

func testExecutions(t *testing.T, s store.Store) {
	ctx := context.Background()
	vm, _ := createVM(t, s, "execvm")
	e, err := s.ExecutionInsert(ctx, &store.ExecutionInsertParams{ProjectID: store.DefaultProjectID, VMID: vm.ID,
		Command: "echo", Args: []string{"hi"}})
	if err != nil || e.ExitCode != nil || e.CompletedAt != nil {
		t.Fatalf("ExecutionInsert = %+v, %v", e, err)
	}
	code := 3
	e, err = s.ExecutionFinish(ctx, &store.ExecutionFinishParams{ID: e.ID, ExitCode: &code, Stdout: "hi\n",
		Stderr: "x", StderrTruncated: true, DurationMS: 12})
	if err != nil || *e.ExitCode != 3 || e.Stdout != "hi\n" || !e.StderrTruncated || e.DurationMS != 12 || e.CompletedAt == nil {
		t.Fatalf("ExecutionFinish = %+v, %v", e, err)
	}
	list, err := s.ExecutionList(ctx, &store.ExecutionListParams{ProjectID: store.DefaultProjectID, VMID: vm.ID})
	if err != nil || len(list) != 1 || list[0].Args[0] != "hi" {
		t.Errorf("ExecutionList = %v, %v", list, err)
	}
}

// testExecutionShell guards the audit trail of how a command ran: the
// history once kept only command and args, so a /bin/sh -c line and the same
// command run as the program read back alike. Shell round-trips true, false
// and unset (nil: unknown, never a made-up value) through every read.
func testExecutionShell(t *testing.T, s store.Store) {
	ctx := context.Background()
	vm, _ := createVM(t, s, "shellvm")
	tests := []struct {
		name  string
		shell *bool
	}{
		{"shell line", new(true)},
		{"program", new(false)},
		{"unknown", nil},
	}
	want := map[string]string{} // execution ID → shell
	for _, tt := range tests {
		taskID := uuid.NewString()
		e, err := s.ExecutionInsert(ctx, &store.ExecutionInsertParams{ProjectID: store.DefaultProjectID, VMID: vm.ID,
			TaskID: taskID, Command: "true", Shell: tt.shell})
		if err != nil {
			t.Fatalf("%s: ExecutionInsert: %v", tt.name, err)
		}
		want[e.ID] = showBool(tt.shell)
		code := 0
		done, err := s.ExecutionFinish(ctx, &store.ExecutionFinishParams{ID: e.ID, ExitCode: &code})
		if err != nil {
			t.Fatalf("%s: ExecutionFinish: %v", tt.name, err)
		}
		byTask, err := s.ExecutionByTask(ctx, store.DefaultProjectID, taskID)
		if err != nil {
			t.Fatalf("%s: ExecutionByTask: %v", tt.name, err)
		}
		for _, got := range []struct {
			from string
			e    *store.Execution
		}{{"ExecutionInsert", e}, {"ExecutionFinish", done}, {"ExecutionByTask", byTask}} {
			if showBool(got.e.Shell) != want[e.ID] {
				t.Errorf("%s: %s Shell = %s, want %s", tt.name, got.from, showBool(got.e.Shell), want[e.ID])
			}
		}
	}
	list, err := s.ExecutionList(ctx, &store.ExecutionListParams{ProjectID: store.DefaultProjectID, VMID: vm.ID})
	if err != nil || len(list) != len(tests) {
		t.Fatalf("ExecutionList = %d rows, %v; want %d", len(list), err, len(tests))
	}
	for _, e := range list {
		if showBool(e.Shell) != want[e.ID] {
			t.Errorf("ExecutionList: %s Shell = %s, want %s", e.ID, showBool(e.Shell), want[e.ID])
		}
	}
}

// showBool prints a *bool for a failure message: true, false or nil.
func showBool(b *bool) string {
	if b == nil {
		return "nil"
	}
	return fmt.Sprint(*b)
}

func testWorkers(t *testing.T, s store.Store) {
	ctx := context.Background()
	w1, err := s.WorkerUpsert(ctx, &store.WorkerUpsertParams{ID: "w", Address: "a:1", Runtime: "docker", Capacity: 4})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	w2, err := s.WorkerUpsert(ctx, &store.WorkerUpsertParams{ID: "w", Address: "a:2", Runtime: "docker", Capacity: 4})
	if err != nil || !w2.HeartbeatAt.After(w1.HeartbeatAt) || !w2.StartedAt.Equal(w1.StartedAt) || w2.Address != "a:2" {
		t.Errorf("heartbeat = %+v, %v (first %+v)", w2, err, w1)
	}
	list, _ := s.WorkerList(ctx)
	if len(list) != 1 {
		t.Errorf("%d workers, want 1", len(list))
	}
}

func testNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	checks := map[string]error{}
	_, checks["VMGet"] = s.VMGet(ctx, &store.VMGetParams{ProjectID: store.DefaultProjectID, IDOrName: "nope"})
	_, checks["TaskGet"] = s.TaskGet(ctx, &store.TaskGetParams{ID: "nope"})
	_, checks["JobGet"] = s.JobGet(ctx, &store.JobGetParams{ID: "nope"})
	_, checks["TaskUpdate"] = s.TaskUpdate(ctx, &store.TaskUpdateParams{ID: "nope", Status: store.TaskRunning})
	st := store.VMRunning
	_, checks["VMUpdate"] = s.VMUpdate(ctx, &store.VMUpdateParams{ID: "nope", Status: &st})
	for name, err := range checks {
		if !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
}

func testWorkerLoad(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i, w := range []string{"w1", "w1", "w2", "w1"} {
		p := newVM(fmt.Sprintf("load-%d", i))
		p.WorkerID = w
		if _, err := s.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: store.DefaultProjectID, Type: "vm:create", Priority: "high", VM: p}); err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			st := store.VMDeleted
			s.VMUpdate(ctx, &store.VMUpdateParams{ID: p.ID, Status: &st})
		}
	}
	load, err := s.WorkerLoad(ctx)
	if err != nil || load["w1"].Sandboxes != 2 || load["w2"].Sandboxes != 1 || len(load) != 2 ||
		load["w1"].VCPUs != 2 || load["w1"].MemoryMB != 2*newVM("x").MemoryMB {
		t.Errorf("WorkerLoad = %+v, %v; want w1: 2 sandboxes, w2: 1", load, err)
	}
}

// testWorkerRoomRace creates sandboxes on one worker concurrently against
// its memory budget: exactly what fits is created, the rest fail with
// ErrUnavailable and leave no rows.
func testWorkerRoomRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	mem := newVM("x").MemoryMB
	if _, err := s.WorkerUpsert(ctx, &store.WorkerUpsertParams{ID: "budget", Address: "a:1", Runtime: "docker",
		MemoryMB: 3 * mem}); err != nil {
		t.Fatal(err)
	}
	var ok, full atomic.Int32
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			vm := newVM(fmt.Sprintf("room-%d", i))
			vm.WorkerID = "budget"
			_, err := s.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: store.DefaultProjectID, Type: "vm:create",
				Priority: "high", VM: vm})
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, errdefs.ErrUnavailable):
				full.Add(1)
			default:
				t.Errorf("create %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	load, _ := s.WorkerLoad(ctx)
	if ok.Load() != 3 || full.Load() != 9 || load["budget"].Sandboxes != 3 {
		t.Fatalf("12 concurrent creates on a worker with room for 3: %d created, %d refused, load %+v; want 3, 9, 3",
			ok.Load(), full.Load(), load["budget"])
	}
}

func testTemplates(t *testing.T, s store.Store) {
	ctx := context.Background()
	insert := func(name string) (*store.Task, error) {
		return s.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: store.DefaultProjectID, Type: "template:build",
			Priority: "low", Template: &store.TemplateInsertParams{ID: uuid.NewString(), Name: name,
				Spec: json.RawMessage(`{"tools":["go"]}`), SpecHash: "h1", WorkerID: "w1"}})
	}
	task, err := insert("py")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := insert("py"); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("duplicate template: %v, want ErrAlreadyExists", err)
	}
	tpl, err := s.TemplateGet(ctx, &store.TemplateGetParams{ProjectID: store.DefaultProjectID, IDOrName: "py"})
	if err != nil || tpl.Status != store.TemplateBuilding || tpl.TaskID != task.ID || tpl.SpecHash != "h1" || tpl.WorkerID != "w1" {
		t.Fatalf("TemplateGet = %+v, %v", tpl, err)
	}
	img := "aetherium/template-py:h1"
	tpl, err = s.TemplateUpdate(ctx, &store.TemplateUpdateParams{ID: tpl.ID, Status: store.TemplateReady, Image: &img,
		ToolsInstalled: map[string]string{"go": "1.23.4"}})
	if err != nil || tpl.Image != img || tpl.ToolsInstalled["go"] != "1.23.4" || tpl.Status != store.TemplateReady {
		t.Errorf("TemplateUpdate = %+v, %v", tpl, err)
	}
	if list, _ := s.TemplateList(ctx, store.DefaultProjectID); len(list) != 1 {
		t.Errorf("TemplateList = %v", list)
	}
	if err := s.TemplateDelete(ctx, &store.TemplateGetParams{ProjectID: store.DefaultProjectID, IDOrName: tpl.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TemplateGet(ctx, &store.TemplateGetParams{ProjectID: store.DefaultProjectID, IDOrName: "py"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("get after delete: %v", err)
	}
}

func testPoolClaim(t *testing.T, s store.Store) {
	ctx := context.Background()
	pooled := store.VMPooled
	for i := range 2 {
		p := newVM(fmt.Sprintf("%s%d", store.PoolNamePrefix, i))
		p.Template = "tpl-1"
		if _, err := s.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: store.DefaultProjectID, Type: "vm:create", Priority: "high", VM: p}); err != nil {
			t.Fatal(err)
		}
		s.VMUpdate(ctx, &store.VMUpdateParams{ID: p.ID, Status: &pooled})
	}
	createVM(t, s, "xpool-user") // a user name that a LIKE '_pool-%' would match
	if list, _ := s.VMList(ctx, &store.VMListParams{ProjectID: store.DefaultProjectID}); len(list) != 1 || list[0].Name != "xpool-user" {
		t.Errorf("user listing = %v, want only the user's sandbox", list)
	}
	if list, _ := s.VMList(ctx, &store.VMListParams{ProjectID: store.DefaultProjectID, Pooled: true}); len(list) != 2 {
		t.Errorf("pool listing has %d, want 2", len(list))
	}
	if _, err := s.VMClaimPooled(ctx, &store.VMClaimParams{ProjectID: store.DefaultProjectID, TemplateID: "tpl-1", Name: "xpool-user"}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("claim under a taken name: %v, want ErrAlreadyExists", err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	got := map[string]string{}
	misses := 0
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vm, err := s.VMClaimPooled(ctx, &store.VMClaimParams{ProjectID: store.DefaultProjectID, TemplateID: "tpl-1", Name: fmt.Sprintf("claim-%d", i)})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				got[vm.ID] = vm.Name
				if vm.Status != store.VMRunning {
					t.Errorf("claimed sandbox is %s", vm.Status)
				}
			case errors.Is(err, errdefs.ErrNotFound):
				misses++
			default:
				t.Errorf("claim: %v", err)
			}
		}()
	}
	wg.Wait()
	if len(got) != 2 || misses != 4 {
		t.Errorf("6 concurrent claims of 2 pooled sandboxes: %d distinct won (%v), %d missed; want 2 and 4", len(got), got, misses)
	}
}

func testAddressLeases(t *testing.T, s store.Store) {
	ctx := context.Background()
	const subnet = "10.77.0.0/16"
	a, err := s.AddressLease(ctx, &store.AddressLeaseParams{Subnet: subnet, Address: "10.77.0.2", VMID: "vm-a"})
	if err != nil || a.Address != "10.77.0.2" || a.VMID != "vm-a" || a.Subnet != subnet {
		t.Fatalf("AddressLease = %+v, %v", a, err)
	}
	// Asking again for the same sandbox returns its lease, whatever address is asked.
	again, err := s.AddressLease(ctx, &store.AddressLeaseParams{Subnet: subnet, Address: "10.77.0.9", VMID: "vm-a"})
	if err != nil || again.Address != "10.77.0.2" {
		t.Fatalf("second AddressLease = %+v, %v; want the first lease", again, err)
	}
	if _, err := s.AddressLease(ctx, &store.AddressLeaseParams{Subnet: subnet, Address: "10.77.0.2", VMID: "vm-b"}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("taking a held address: err = %v, want ErrAlreadyExists", err)
	}
	// The same address in another subnet is another address.
	if _, err := s.AddressLease(ctx, &store.AddressLeaseParams{Subnet: "10.78.0.0/16", Address: "10.77.0.2", VMID: "vm-b"}); err != nil {
		t.Fatal(err)
	}
	s.AddressLease(ctx, &store.AddressLeaseParams{Subnet: subnet, Address: "10.77.0.3", VMID: "vm-b"})
	list, err := s.AddressList(ctx, subnet)
	if err != nil || len(list) != 2 || list[0].VMID != "vm-a" || list[1].Address != "10.77.0.3" {
		t.Fatalf("AddressList = %v, %v", list, err)
	}
	if err := s.AddressRelease(ctx, "vm-b"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddressRelease(ctx, "vm-never"); err != nil {
		t.Fatalf("releasing nothing: %v", err)
	}
	list, _ = s.AddressList(ctx, subnet)
	other, _ := s.AddressList(ctx, "10.78.0.0/16")
	if len(list) != 1 || list[0].VMID != "vm-a" || len(other) != 0 {
		t.Fatalf("after release: %v and %v, want only vm-a's lease", list, other)
	}
}

// testAddressLeaseExclusive races sandboxes for one address: exactly one wins.
func testAddressLeaseExclusive(t *testing.T, s store.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.AddressLease(ctx, &store.AddressLeaseParams{Subnet: "10.9.0.0/24", Address: "10.9.0.5", VMID: fmt.Sprintf("vm-%d", i)})
			switch {
			case err == nil:
				mu.Lock()
				won++
				mu.Unlock()
			case !errors.Is(err, errdefs.ErrAlreadyExists):
				t.Errorf("lease %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Errorf("%d sandboxes got 10.9.0.5, want exactly 1", won)
	}
}

// OldExecutionShellUnknown checks, after migration 16 (the executions'
// shell column), the execution a test recorded before it (id "old", sandbox
// "oldvm", default project): how it ran is unknown, never made up.
func OldExecutionShellUnknown(t *testing.T, s store.Store) {
	t.Helper()
	list, err := s.ExecutionList(context.Background(), &store.ExecutionListParams{ProjectID: store.DefaultProjectID, VMID: "oldvm"})
	if err != nil || len(list) != 1 {
		t.Fatalf("ExecutionList = %d rows, %v; want the old one", len(list), err)
	}
	if list[0].Shell != nil {
		t.Errorf("old execution's Shell = %v after migration 16, want nil (unknown)", *list[0].Shell)
	}
}

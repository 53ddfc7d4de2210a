package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/events"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// TestWireUnchanged guards the wire: the API once wrote store rows as its
// JSON, and clients (CLI, e2e tests, scripts) decode that; the apiv1 types
// must encode every row byte for byte the same.
func TestWireUnchanged(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	ctx := t.Context()
	now := time.Now()
	// Every field set, so omitempty hides none of them.
	tk, err := a.st.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: store.DefaultProjectID, Type: task.KindVMCreate,
		VM: &store.VMInsertParams{ID: "vm1", Name: "wire", Image: "img", Template: "tp0", Runtime: "docker", VCPUs: 2, MemoryMB: 1024,
			AdditionalTools: []string{"go"}, ToolVersions: map[string]string{"go": "1.23"}, WorkerID: "w1", ExpiresAt: &now,
			IdleTimeoutS: 60, OnExpire: store.ExpirePause}})
	if err != nil {
		t.Fatal(err)
	}
	failed, rid, ip, msg := store.VMFailed, "c0ffee", "10.0.0.2", "boom"
	vm, err := a.st.VMUpdate(ctx, &store.VMUpdateParams{ID: tk.VMID, Status: &failed, RuntimeID: &rid, IPAddress: &ip, Error: &msg,
		LastActiveAt: &now, ToolsInstalled: map[string]string{"go": "1.23.4"}})
	if err != nil {
		t.Fatal(err)
	}
	tk, err = task.Submit(ctx, a.st, a.q, task.JobRunArgs{JobID: "j1"}, &task.SubmitParams{ProjectID: store.DefaultProjectID, VMID: vm.ID,
		Job:      &store.JobInsertParams{ID: "j1", VMID: vm.ID, Commands: []string{"true"}},
		Template: &store.TemplateInsertParams{ID: "tp1", Name: "tpl", Spec: json.RawMessage(`{"base":"img"}`), SpecHash: "h", PoolSize: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if tk, err = a.st.TaskUpdate(ctx, &store.TaskUpdateParams{ID: tk.ID, Status: store.TaskSucceeded, Result: json.RawMessage(`{"job_id":"j1"}`)}); err != nil {
		t.Fatal(err)
	}
	e, err := a.st.ExecutionInsert(ctx, &store.ExecutionInsertParams{ProjectID: store.DefaultProjectID, VMID: vm.ID, TaskID: tk.ID, JobID: "j1",
		Command: "true", Shell: new(false)})
	if err != nil {
		t.Fatal(err)
	}
	code := 0
	if e, err = a.st.ExecutionFinish(ctx, &store.ExecutionFinishParams{ID: e.ID, ExitCode: &code, Stdout: "x"}); err != nil {
		t.Fatal(err)
	}
	job, _ := a.st.JobGet(ctx, &store.JobGetParams{ID: "j1"})
	tpl, _ := a.st.TemplateGet(ctx, &store.TemplateGetParams{ProjectID: store.DefaultProjectID, IDOrName: "tp1"})
	ev := &events.Event{Kind: events.KindTask, Status: "running", TaskType: task.KindJobRun, TaskID: tk.ID, ProjectID: "default", Time: now}
	tests := []struct {
		name     string
		row, out any
	}{
		{"vm", vm, vmOut(vm)},
		{"task", tk, taskOut(tk)},
		{"job", job, jobOut(job)},
		{"execution", e, executionOut(e)},
		{"template", tpl, templateOut(tpl)},
		{"event", ev, eventOut(ev)},
		{"list", []*store.VM{vm}, each([]*store.VM{vm}, vmOut)},
		{"empty list", []*store.VM{}, each([]*store.VM{}, vmOut)},
	}
	for _, tt := range tests {
		want, err1 := json.Marshal(tt.row)
		got, err2 := json.Marshal(tt.out)
		if err1 != nil || err2 != nil || string(got) != string(want) {
			t.Errorf("%s on the wire:\n got %s\nwant %s", tt.name, got, want)
		}
	}
}

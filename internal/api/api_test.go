package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/auth"
	"github.com/aetherium/aetherium/internal/cluster"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/events"
	"github.com/aetherium/aetherium/internal/logs"
	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/store/sqlite"
	"github.com/aetherium/aetherium/internal/task"
)

// fakeQueue records messages; Err, when set, fails every Enqueue.
type fakeQueue struct {
	mu   sync.Mutex
	sent []*queue.Message
	Err  error
}

func (q *fakeQueue) Enqueue(_ context.Context, m *queue.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.sent = append(q.sent, m)
	return q.Err
}

func (q *fakeQueue) messages() []*queue.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]*queue.Message(nil), q.sent...)
}

// fakeSandboxes is a cluster.Sandboxes whose calls go to the Impl fields.
type fakeSandboxes struct {
	ExecImpl func(ctx context.Context, vm *store.VM, p *task.ExecParams, eio agentclient.ExecIO) (*store.Execution, error)
	unfakedGuest
	// DialImpl, when set, serves Dial.
	DialImpl func(ctx context.Context, vm *store.VM, port int) (net.Conn, error)
}

func (f *fakeSandboxes) Exec(ctx context.Context, vm *store.VM, p *task.ExecParams, _ task.ExecRecord, eio agentclient.ExecIO) (*store.Execution, error) {
	return f.ExecImpl(ctx, vm, p, eio)
}

// unfakedGuest answers every cluster.Guest call as not implemented (the
// fuzz seeds reach those routes; processes are tested end to end).
type unfakedGuest struct{}

func (unfakedGuest) StartProcess(context.Context, *store.VM, *task.ExecParams) (int, error) {
	return 0, errdefs.ErrNotImplemented
}
func (unfakedGuest) Processes(context.Context, *store.VM) ([]apiv1.Process, error) {
	return nil, errdefs.ErrNotImplemented
}
func (unfakedGuest) SignalProcess(context.Context, *store.VM, int, int) error {
	return errdefs.ErrNotImplemented
}
func (unfakedGuest) ProcessOutput(context.Context, *store.VM, int, bool) (cluster.Output, error) {
	return nil, errdefs.ErrNotImplemented
}
func (unfakedGuest) ListDir(context.Context, *store.VM, string) (*apiv1.DirListing, error) {
	return nil, errdefs.ErrNotImplemented
}
func (unfakedGuest) WatchDir(context.Context, *store.VM, string, bool, func(), func(apiv1.FileEvent) error) error {
	return errdefs.ErrNotImplemented
}

func (f *fakeSandboxes) PutFile(context.Context, *store.VM, string, uint32, io.Reader) (int64, error) {
	return 0, errdefs.FailedPrecondition("not faked")
}

func (f *fakeSandboxes) GetFile(context.Context, *store.VM, string) (*task.File, error) {
	return nil, errdefs.FailedPrecondition("not faked")
}

func (f *fakeSandboxes) Console(context.Context, *store.VM, int) ([]byte, error) {
	return nil, errdefs.ErrNotImplemented
}

func (f *fakeSandboxes) Pty(context.Context, *store.VM, *agentproto.PtyRequest) (cluster.Terminal, error) {
	return nil, errdefs.ErrNotImplemented
}

func (f *fakeSandboxes) Dial(ctx context.Context, vm *store.VM, port int) (net.Conn, error) {
	if f.DialImpl != nil {
		return f.DialImpl(ctx, vm, port)
	}
	return nil, errdefs.ErrNotImplemented
}

// testAPI is a Server over a real SQLite store in a temp dir, a recording
// queue and fake sandboxes. Place puts every sandbox on w1 unless placeErr.
type testAPI struct {
	// admin is an admin key of the default project, which do sends.
	admin string
	s     *Server
	st    store.Store
	logs  *logs.Pipeline
	q     *fakeQueue
	sb    *fakeSandboxes
	place error
}

func newTestAPI(t testing.TB) *testAPI {
	t.Helper()
	return newTestAPIWith(t, nil)
}

// newTestAPIWith is newTestAPI with the Config changed by mod (when set)
// before the server is made.
func newTestAPIWith(t testing.TB, mod func(a *testAPI, cfg *Config)) *testAPI {
	t.Helper()
	st, err := sqlite.Open(t.Context(), t.TempDir()+"/a.db", sqlite.SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a := &testAPI{st: st, q: &fakeQueue{}, sb: &fakeSandboxes{}, logs: newTestLogs(t)}
	cfg := Config{DefaultImage: "img", RuntimeName: "docker", Public: true, Events: events.NewLocal(),
		Logs:  LogSource{Store: a.logs.Store(), Hub: a.logs.Hub()},
		Local: a.sb, InternalToken: "secret", Logger: slog.New(slog.DiscardHandler),
		Place: func(_ context.Context, only string, _, _ int) (string, error) {
			if a.place != nil {
				return "", a.place
			}
			if only != "" {
				return only, nil
			}
			return "w1", nil
		}}
	if mod != nil {
		mod(a, &cfg)
	}
	a.s, err = New(cfg, st, a.q, a.sb)
	if err != nil {
		t.Fatal(err)
	}
	a.admin = a.key(t, store.DefaultProjectID, store.RoleAdmin, nil)
	return a
}

// key stores a new key of project with role (expiring at expires, if set)
// and returns it.
func (a *testAPI) key(t testing.TB, project, role string, expires *time.Time) string {
	t.Helper()
	key, prefix, hash := auth.NewKey()
	if _, err := a.st.APIKeyInsert(t.Context(), &store.APIKeyInsertParams{ID: uuid.NewString(), ProjectID: project,
		Prefix: prefix, Hash: hash, Role: role, ExpiresAt: expires}); err != nil {
		t.Fatal(err)
	}
	return key
}

// do serves one request with the admin key and returns the status and the
// body.
func (a *testAPI) do(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	return a.doAs(t, a.admin, method, path, body)
}

// doAs serves one JSON request with key (none when empty) to a loopback
// Host.
func (a *testAPI) doAs(t *testing.T, key, method, path, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), method, path, strings.NewReader(body))
	req.Host = "127.0.0.1:8080"
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	a.s.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// vm inserts a sandbox named name on worker w1 in status, with its create
// task, and returns it.
func (a *testAPI) vm(t testing.TB, name, status string) *store.VM {
	t.Helper()
	return a.vmWithID(t, "id-"+name, name, status)
}

// vmWithID is vm with the sandbox's ID.
func (a *testAPI) vmWithID(t testing.TB, id, name, status string) *store.VM {
	t.Helper()
	tk, err := a.st.TaskInsert(t.Context(), &store.TaskInsertParams{ProjectID: store.DefaultProjectID, Type: task.KindVMCreate,
		VM: &store.VMInsertParams{ID: id, Name: name, Image: "img", Runtime: "docker", VCPUs: 1, MemoryMB: 512, WorkerID: "w1"}})
	if err != nil {
		t.Fatal(err)
	}
	if status == store.VMPaused || status == store.VMStopped { // reached through running (store.VMTransitions)
		a.setVMStatus(t, tk.VMID, store.VMRunning)
	}
	return a.setVMStatus(t, tk.VMID, status)
}

func (a *testAPI) setVMStatus(t testing.TB, id, status string) *store.VM {
	t.Helper()
	vm, err := a.st.VMUpdate(t.Context(), &store.VMUpdateParams{ID: id, Status: &status})
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

// TestErrorMapping sends requests that must fail with a 4xx (or 5xx) naming
// the problem, and checks that none of them queued anything.
func TestErrorMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		method, path string
		body         string
		setup        func(t *testing.T, a *testAPI)
		wantStatus   int
		wantCode     string
		wantMsg      string
	}{
		{name: "bad name", method: "POST", path: "/api/v1/vms", body: `{"name":"Bad_Name"}`, wantStatus: 400, wantCode: "invalid_argument", wantMsg: "name"},
		{name: "unknown tool", method: "POST", path: "/api/v1/vms", body: `{"name":"a","additional_tools":["cobol"]}`, wantStatus: 422, wantCode: "unprocessable", wantMsg: "cobol"},
		// A Debian pin Debian cannot satisfy used to be accepted and fail in the sandbox.
		{name: "unsatisfiable python pin", method: "POST", path: "/api/v1/vms", body: `{"name":"a","additional_tools":["python@3.12"]}`, wantStatus: 422, wantCode: "unprocessable", wantMsg: "python@3.12 cannot be installed: Python 3 from Debian (bookworm has 3.11) provides only 3.11"},
		{name: "unsatisfiable rust pin in a template", method: "POST", path: "/api/v1/templates", body: `{"name":"t","tools":["rust"],"tool_versions":{"rust":"1.80"}}`, wantStatus: 422, wantCode: "unprocessable", wantMsg: "provides only 1.63"},
		{name: "template and image", method: "POST", path: "/api/v1/vms", body: `{"name":"a","template":"t","image":"i"}`, wantStatus: 400, wantCode: "invalid_argument", wantMsg: "one or the other"},
		{name: "unknown template", method: "POST", path: "/api/v1/vms", body: `{"name":"a","template":"nope"}`, wantStatus: 404, wantCode: "not_found", wantMsg: "nope"},
		{name: "no worker has room", method: "POST", path: "/api/v1/vms", body: `{"name":"a"}`, wantStatus: 503, wantCode: "unavailable", wantMsg: "no room",
			setup: func(_ *testing.T, a *testAPI) { a.place = errdefs.Unavailable("no room") }},
		{name: "duplicate name", method: "POST", path: "/api/v1/vms", body: `{"name":"taken"}`, wantStatus: 409, wantCode: "already_exists", wantMsg: "taken",
			setup: func(t *testing.T, a *testAPI) { a.vm(t, "taken", store.VMRunning) }},
		{name: "unknown sandbox", method: "GET", path: "/api/v1/vms/nope", wantStatus: 404, wantCode: "not_found", wantMsg: "nope"},
		{name: "delete a deleted sandbox", method: "DELETE", path: "/api/v1/vms/id-old", wantStatus: 404, wantCode: "not_found", wantMsg: "already deleted",
			setup: func(t *testing.T, a *testAPI) { a.vm(t, "old", store.VMDeleted) }},
		{name: "execute in a paused sandbox", method: "POST", path: "/api/v1/vms/p/execute", body: `{"command":"true"}`, wantStatus: 409, wantCode: "failed_precondition", wantMsg: "paused",
			setup: func(t *testing.T, a *testAPI) { a.vm(t, "p", store.VMPaused) }},
		{name: "execute with a bad env", method: "POST", path: "/api/v1/vms/r/execute", body: `{"command":"true","env":{"A-B":"1"}}`, wantStatus: 400, wantCode: "invalid_argument", wantMsg: "env",
			setup: func(t *testing.T, a *testAPI) { a.vm(t, "r", store.VMRunning) }},
		{name: "pause a paused sandbox", method: "POST", path: "/api/v1/vms/p/pause", wantStatus: 409, wantCode: "failed_precondition", wantMsg: "not running",
			setup: func(t *testing.T, a *testAPI) { a.vm(t, "p", store.VMPaused) }},
		{name: "snapshot with a bad name", method: "POST", path: "/api/v1/vms/r/snapshot", body: `{"name":"A B"}`, wantStatus: 400, wantCode: "invalid_argument", wantMsg: "name",
			setup: func(t *testing.T, a *testAPI) { a.vm(t, "r", store.VMRunning) }},
		{name: "empty job", method: "POST", path: "/api/v1/jobs", body: `{"vm_id":"r","commands":[]}`, wantStatus: 400, wantCode: "invalid_argument", wantMsg: "commands"},
		{name: "job in a failed sandbox", method: "POST", path: "/api/v1/jobs", body: `{"vm_id":"f","commands":["true"]}`, wantStatus: 409, wantCode: "failed_precondition", wantMsg: "failed",
			setup: func(t *testing.T, a *testAPI) { a.vm(t, "f", store.VMFailed) }},
		{name: "image with a bad package", method: "POST", path: "/api/v1/images", body: `{"include":["a b"]}`, wantStatus: 400, wantCode: "invalid_argument", wantMsg: "include"},
		{name: "image for an unknown worker", method: "POST", path: "/api/v1/images?worker=nope", body: `{}`, wantStatus: 404, wantCode: "not_found", wantMsg: "nope"},
		{name: "wait too long", method: "GET", path: "/api/v1/tasks/x?wait=2h", wantStatus: 400, wantCode: "invalid_argument", wantMsg: "wait"},
		{name: "template without a name", method: "POST", path: "/api/v1/templates", body: `{"name":""}`, wantStatus: 400, wantCode: "invalid_argument", wantMsg: "name"},
		{name: "exec in a stopped sandbox", method: "POST", path: "/api/v1/vms/r/exec", body: `{"command":"true"}`, wantStatus: 409, wantCode: "failed_precondition", wantMsg: "not running",
			setup: func(t *testing.T, a *testAPI) {
				a.vm(t, "r", store.VMRunning)
				a.sb.ExecImpl = func(context.Context, *store.VM, *task.ExecParams, agentclient.ExecIO) (*store.Execution, error) {
					return nil, errdefs.FailedPrecondition("sandbox r is stopped, not running")
				}
			}},
		{name: "internal errors carry no detail", method: "POST", path: "/api/v1/vms/r/exec", body: `{"command":"true"}`, wantStatus: 500, wantCode: "internal", wantMsg: "see the server log",
			setup: func(t *testing.T, a *testAPI) {
				a.vm(t, "r", store.VMRunning)
				a.sb.ExecImpl = func(context.Context, *store.VM, *task.ExecParams, agentclient.ExecIO) (*store.Execution, error) {
					return nil, errors.New("secret internal detail")
				}
			}},
		{name: "internal route needs the token", method: "POST", path: "/internal/v1/vms/r/exec", body: `{"command":"true"}`, wantStatus: 401, wantCode: "unauthenticated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t)
			if tt.setup != nil {
				tt.setup(t, a)
			}
			status, body := a.do(t, tt.method, tt.path, tt.body)
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			json.Unmarshal([]byte(body), &e)
			if status != tt.wantStatus || e.Error.Code != tt.wantCode || !strings.Contains(e.Error.Message, tt.wantMsg) || strings.Contains(body, "secret") {
				t.Errorf("%s %s %s = %d %s; want %d %s containing %q", tt.method, tt.path, tt.body, status, body, tt.wantStatus, tt.wantCode, tt.wantMsg)
			}
			if n := len(a.q.messages()); n != 0 {
				t.Errorf("%d messages queued by a failed request", n)
			}
		})
	}
}

// TestSubmitted checks that accepted requests create their task through
// task.Submit: a row with the kind's policy and a message to the worker
// that must run it, with the 202 body naming both.
func TestSubmitted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		setup     func(t *testing.T, a *testAPI)
		method    string
		path      string
		body      string
		wantKind  string
		wantPrio  string
		wantRoute string
		wantTime  time.Duration
		wantKeys  string // of the 202 body, sorted
	}{
		{name: "create", method: "POST", path: "/api/v1/vms", body: `{"name":"new"}`,
			wantKind: task.KindVMCreate, wantPrio: queue.PriorityHigh, wantRoute: "w1", wantTime: 5 * time.Minute, wantKeys: "status task_id vm_id"},
		{name: "create with tools takes longer", method: "POST", path: "/api/v1/vms", body: `{"name":"new","additional_tools":["go"]}`,
			wantKind: task.KindVMCreate, wantPrio: queue.PriorityHigh, wantRoute: "w1", wantTime: 15 * time.Minute, wantKeys: "status task_id vm_id"},
		{name: "execute goes to the owner", method: "POST", path: "/api/v1/vms/r/execute", body: `{"command":"true","timeout_seconds":60}`,
			setup:    func(t *testing.T, a *testAPI) { a.vm(t, "r", store.VMRunning) },
			wantKind: task.KindVMExecute, wantPrio: queue.PriorityDefault, wantRoute: "w1", wantTime: 3 * time.Minute, wantKeys: "status task_id vm_id"},
		{name: "a lost sandbox's delete goes to any worker", method: "DELETE", path: "/api/v1/vms/l",
			setup:    func(t *testing.T, a *testAPI) { a.vm(t, "l", store.VMLost) },
			wantKind: task.KindVMDelete, wantPrio: queue.PriorityCritical, wantRoute: "", wantTime: 2 * time.Minute, wantKeys: "status task_id vm_id"},
		{name: "job", method: "POST", path: "/api/v1/jobs", body: `{"vm_id":"r","commands":["true"]}`,
			setup:    func(t *testing.T, a *testAPI) { a.vm(t, "r", store.VMRunning) },
			wantKind: task.KindJobRun, wantPrio: queue.PriorityDefault, wantRoute: "w1", wantTime: 2 * time.Hour, wantKeys: "job_id status task_id vm_id"},
		{name: "image build on any worker", method: "POST", path: "/api/v1/images", body: `{"suite":"bookworm"}`,
			wantKind: task.KindImageBuild, wantPrio: queue.PriorityLow, wantRoute: "", wantTime: 30 * time.Minute, wantKeys: "status task_id"},
		{name: "snapshot", method: "POST", path: "/api/v1/vms/r/snapshot", body: `{"name":"snap"}`,
			setup:    func(t *testing.T, a *testAPI) { a.vm(t, "r", store.VMRunning) },
			wantKind: task.KindVMSnapshot, wantPrio: queue.PriorityDefault, wantRoute: "w1", wantTime: 15 * time.Minute, wantKeys: "status task_id template_id vm_id"},
		{name: "template", method: "POST", path: "/api/v1/templates", body: `{"name":"tpl"}`,
			wantKind: task.KindTemplateBuild, wantPrio: queue.PriorityLow, wantRoute: "w1", wantTime: 5 * time.Minute, wantKeys: "cached status task_id template_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t)
			if tt.setup != nil {
				tt.setup(t, a)
			}
			status, body := a.do(t, tt.method, tt.path, tt.body)
			var got map[string]any
			if err := json.Unmarshal([]byte(body), &got); err != nil || status != http.StatusAccepted || sortedKeys(got) != tt.wantKeys {
				t.Fatalf("%s %s = %d %s; want 202 with keys %s", tt.method, tt.path, status, body, tt.wantKeys)
			}
			msgs := a.q.messages()
			if len(msgs) != 1 {
				t.Fatalf("%d messages, want 1", len(msgs))
			}
			m := msgs[0]
			want := queue.Message{ID: got["task_id"].(string), Type: tt.wantKind, Priority: tt.wantPrio, MaxRetries: task.DefaultPolicy(tt.wantKind).MaxRetries,
				Timeout: tt.wantTime, Worker: tt.wantRoute}
			if *m != want {
				t.Errorf("message = %+v, want %+v", *m, want)
			}
			row, err := a.st.TaskGet(t.Context(), &store.TaskGetParams{ID: m.ID})
			if err != nil || row.Type != tt.wantKind || row.Status != store.TaskPending || row.Priority != tt.wantPrio {
				t.Errorf("row = %+v, %v; want a pending %s row", row, err, tt.wantKind)
			}
		})
	}
}

func sortedKeys(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, " ")
}

// TestEnqueueFailureStillAccepts checks that a request whose message could
// not be sent still succeeds: the pending row is the truth and the
// reconciler sends the message later.
func TestEnqueueFailureStillAccepts(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.q.Err = errdefs.Unavailable("redis down")
	status, body := a.do(t, "POST", "/api/v1/vms", `{"name":"new"}`)
	var acc struct {
		TaskID string `json:"task_id"`
	}
	json.Unmarshal([]byte(body), &acc)
	if status != http.StatusAccepted || acc.TaskID == "" {
		t.Fatalf("create = %d %s, want 202", status, body)
	}
	if row, err := a.st.TaskGet(t.Context(), &store.TaskGetParams{ID: acc.TaskID}); err != nil || row.Status != store.TaskPending {
		t.Errorf("row = %+v, %v; want it pending for the reconciler", row, err)
	}
}

// TestPoolClaimRecord checks that a create answered from the warm pool is
// recorded as a finished vm:create with typed args (it once carried an
// untyped {"from_pool":true}) and queues nothing.
func TestPoolClaimRecord(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	ctx := t.Context()
	_, err := a.st.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: store.DefaultProjectID, Type: task.KindTemplateBuild,
		Template: &store.TemplateInsertParams{ID: "tp1", Name: "tpl", Spec: json.RawMessage(`{}`), SpecHash: "h", WorkerID: "w1", PoolSize: 1}})
	if err != nil {
		t.Fatal(err)
	}
	img := "img:tpl"
	if _, err := a.st.TemplateUpdate(ctx, &store.TemplateUpdateParams{ID: "tp1", Status: store.TemplateReady, Image: &img}); err != nil {
		t.Fatal(err)
	}
	pooled := store.VMPooled
	if _, err := a.st.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: store.DefaultProjectID, Type: task.KindVMCreate, VM: &store.VMInsertParams{
		ID: "pool1", Name: store.PoolNamePrefix + "1", Image: img, Template: "tp1", Runtime: "docker", VCPUs: task.PoolVCPUs,
		MemoryMB: task.PoolMemoryMB, WorkerID: "w1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.st.VMUpdate(ctx, &store.VMUpdateParams{ID: "pool1", Status: &pooled}); err != nil {
		t.Fatal(err)
	}
	status, body := a.do(t, "POST", "/api/v1/vms", `{"name":"mine","template":"tpl"}`)
	var acc struct {
		TaskID string `json:"task_id"`
		VMID   string `json:"vm_id"`
	}
	json.Unmarshal([]byte(body), &acc)
	if status != http.StatusAccepted || acc.VMID != "pool1" {
		t.Fatalf("create = %d %s, want 202 with the pool sandbox", status, body)
	}
	row, err := a.st.TaskGet(ctx, &store.TaskGetParams{ID: acc.TaskID})
	if err != nil || row.Status != store.TaskSucceeded || string(row.Payload) != `{"from_pool":true}` || row.Type != task.KindVMCreate {
		t.Errorf("row = %+v (payload %s), %v; want a succeeded vm:create with {\"from_pool\":true}", row, row.Payload, err)
	}
	var res task.VMResult
	if json.Unmarshal(row.Result, &res) != nil || res.VMID != "pool1" || res.Status != store.VMRunning {
		t.Errorf("result = %s, want pool1 running", row.Result)
	}
	if n := len(a.q.messages()); n != 0 {
		t.Errorf("%d messages for work already done, want 0", n)
	}
}

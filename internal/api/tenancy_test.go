package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/events"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// project makes a project with quota and returns its ID and a member key.
func (a *testAPI) project(t *testing.T, name string, q store.Quota) (id, member string) {
	t.Helper()
	p, err := a.st.ProjectInsert(t.Context(), &store.ProjectInsertParams{Name: name, Quota: q})
	if err != nil {
		t.Fatal(err)
	}
	return p.ID, a.key(t, p.ID, store.RoleMember, nil)
}

// TestProjectIsolation: every object of project A (sandbox, task, job,
// execution, template, files, console, events) is 404 to project B's member
// key, and missing from B's lists and streams.
func TestProjectIsolation(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	ctx := t.Context()
	aID, aKey := a.project(t, "a", store.Quota{})
	_, bKey := a.project(t, "b", store.Quota{})

	// A's objects, made through the API with A's key where the API makes them.
	if status, body := a.doAs(t, aKey, "POST", "/api/v1/vms", `{"name":"secret-vm"}`); status != http.StatusAccepted {
		t.Fatalf("A creates a sandbox: %d %s", status, body)
	}
	vm, err := a.st.VMGet(ctx, &store.VMGetParams{ProjectID: aID, IDOrName: "secret-vm"})
	if err != nil {
		t.Fatal(err)
	}
	running := store.VMRunning
	if _, err := a.st.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &running}); err != nil {
		t.Fatal(err)
	}
	var acc struct {
		TaskID string `json:"task_id"`
		JobID  string `json:"job_id"`
	}
	status, body := a.doAs(t, aKey, "POST", "/api/v1/jobs", `{"vm_id":"secret-vm","commands":["true"]}`)
	if status != http.StatusAccepted || json.Unmarshal([]byte(body), &acc) != nil {
		t.Fatalf("A creates a job: %d %s", status, body)
	}
	exe, err := a.st.ExecutionInsert(ctx, &store.ExecutionInsertParams{ProjectID: aID, VMID: vm.ID, Command: "true", StartedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if status, body := a.doAs(t, aKey, "POST", "/api/v1/templates", `{"name":"secret-tpl"}`); status/100 != 2 {
		t.Fatalf("A builds a template: %d %s", status, body)
	}
	a.sb.ExecImpl = func(context.Context, *store.VM, *task.ExecParams, agentclient.ExecIO) (*store.Execution, error) {
		t.Error("B's exec reached A's sandbox")
		return &store.Execution{}, nil
	}

	for _, path := range []string{
		"GET /api/v1/vms/secret-vm", "GET /api/v1/vms/" + vm.ID, "DELETE /api/v1/vms/" + vm.ID,
		"POST /api/v1/vms/" + vm.ID + "/execute", "POST /api/v1/vms/" + vm.ID + "/exec",
		"GET /api/v1/vms/" + vm.ID + "/executions", "POST /api/v1/vms/" + vm.ID + "/timeout",
		"POST /api/v1/vms/" + vm.ID + "/pause", "POST /api/v1/vms/" + vm.ID + "/resume",
		"POST /api/v1/vms/" + vm.ID + "/snapshot", "PUT /api/v1/vms/" + vm.ID + "/files?path=/x",
		"GET /api/v1/vms/" + vm.ID + "/files?path=/etc/passwd", "GET /api/v1/vms/" + vm.ID + "/console",
		"GET /api/v1/tasks/" + acc.TaskID, "GET /api/v1/jobs/" + acc.JobID,
		"GET /api/v1/templates/secret-tpl", "DELETE /api/v1/templates/secret-tpl", "POST /api/v1/templates/secret-tpl/pool",
		"GET /api/v1/events?vm_id=" + vm.ID,
		"POST /api/v1/jobs", "POST /api/v1/vms with template",
	} {
		method, p, _ := strings.Cut(path, " ")
		reqBody := `{"command":"true","name":"x","timeout_seconds":1,"size":1}`
		switch p {
		case "/api/v1/jobs":
			reqBody = `{"vm_id":"` + vm.ID + `","commands":["true"]}`
		case "/api/v1/templates/secret-tpl/pool":
			reqBody = `{"size":1}`
		case "/api/v1/vms/" + vm.ID + "/timeout":
			reqBody = `{"timeout_seconds":1}`
		case "/api/v1/vms/" + vm.ID + "/snapshot":
			reqBody = `{"name":"x"}`
		case "/api/v1/vms with template":
			p, reqBody = "/api/v1/vms", `{"name":"mine","template":"secret-tpl"}`
		}
		t.Run(path, func(t *testing.T) {
			if status, body := a.doAs(t, bKey, method, p, reqBody); status != http.StatusNotFound {
				t.Errorf("B: %s %s = %d %s; want 404", method, p, status, body)
			}
		})
	}
	// A member key cannot switch projects with the header; an admin key can.
	for _, tt := range []struct {
		key  string
		want int
	}{{bKey, http.StatusNotFound}, {a.admin, http.StatusOK}} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(ctx, "GET", "/api/v1/vms/"+vm.ID, nil)
		req.Host = "127.0.0.1"
		req.Header.Set("Authorization", "Bearer "+tt.key)
		req.Header.Set(ProjectHeader, "a")
		a.s.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("GET A's sandbox with %s: a = %d %s; want %d", ProjectHeader, rec.Code, rec.Body, tt.want)
		}
	}
	for _, tt := range []struct{ path, secret string }{
		{"/api/v1/vms?all=true", vm.ID}, {"/api/v1/tasks", acc.TaskID}, {"/api/v1/templates", "secret-tpl"},
	} {
		if status, body := a.doAs(t, bKey, "GET", tt.path, ""); status != http.StatusOK || strings.Contains(body, tt.secret) {
			t.Errorf("B: GET %s = %d %s; want 200 without %s", tt.path, status, body, tt.secret)
		}
	}
	if status, body := a.doAs(t, aKey, "GET", "/api/v1/vms/"+vm.ID+"/executions", ""); !strings.Contains(body, exe.ID) {
		t.Errorf("A: its executions = %d %s; want %s", status, body, exe.ID)
	}

	// Streams: B's event stream never carries A's events.
	srv := httptest.NewServer(a.s)
	defer srv.Close()
	stream := func(key string) (*bufio.Reader, func()) {
		ctx, cancel := context.WithCancel(t.Context())
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/v1/events", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := srv.Client().Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("events: %v %v", resp, err)
		}
		br := bufio.NewReader(resp.Body)
		br.ReadString('\n') // ": subscribed"
		br.ReadString('\n')
		return br, func() { cancel(); resp.Body.Close() }
	}
	bStream, closeB := stream(bKey)
	defer closeB()
	aStream, closeA := stream(aKey)
	defer closeA()
	a.s.cfg.Events.Publish(ctx, &events.Event{Kind: events.KindVM, Status: "running", VMID: vm.ID, ProjectID: aID})
	a.s.cfg.Events.Publish(ctx, &events.Event{Kind: events.KindVM, Status: "running", VMID: "b-marker", ProjectID: "nope"})
	a.s.cfg.Events.Publish(ctx, &events.Event{Kind: events.KindVM, Status: "running", VMID: "b-visible", ProjectID: bProject(t, a)})
	line := readEvent(t, aStream)
	if !strings.Contains(line, vm.ID) {
		t.Errorf("A's stream: %q; want its own event", line)
	}
	if line := readEvent(t, bStream); !strings.Contains(line, "b-visible") {
		t.Errorf("B's stream: first event %q; want only B's (b-visible)", line)
	}
}

func bProject(t *testing.T, a *testAPI) string {
	p, err := a.st.ProjectGet(t.Context(), "b")
	if err != nil {
		t.Fatal(err)
	}
	return p.ID
}

// readEvent returns the next "data:" line of an SSE stream.
func readEvent(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v", err)
		}
		if strings.HasPrefix(line, "data:") {
			return line
		}
	}
}

// TestQuotaRaceThroughAPI: 20 concurrent creates against a project quota of
// 5 sandboxes give exactly 5 sandboxes; the others are 429 quota_exceeded
// with a message naming the quota.
func TestQuotaRaceThroughAPI(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	pID, key := a.project(t, "small", store.Quota{Sandboxes: 5})
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	var msgs []string
	for i := range 20 {
		wg.Go(func() {
			status, body := a.doAs(t, key, "POST", "/api/v1/vms", fmt.Sprintf(`{"name":"q%d"}`, i))
			mu.Lock()
			defer mu.Unlock()
			codes[status]++
			if status == http.StatusTooManyRequests {
				msgs = append(msgs, body)
			}
		})
	}
	wg.Wait()
	vms, err := a.st.VMList(t.Context(), &store.VMListParams{ProjectID: pID})
	if err != nil {
		t.Fatal(err)
	}
	if len(vms) != 5 || codes[http.StatusAccepted] != 5 || codes[http.StatusTooManyRequests] != 15 {
		t.Fatalf("20 creates at quota 5: %d sandboxes, statuses %v; want 5 and 5×202 + 15×429", len(vms), codes)
	}
	for _, m := range msgs {
		if !strings.Contains(m, "quota_exceeded") || !strings.Contains(m, "sandboxes") {
			t.Errorf("429 body %s does not name the quota", m)
		}
	}
}

// TestExecQuota: a project with Quota.Execs 1 gets 429 for a second exec
// while the first runs.
func TestExecQuota(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	pID, key := a.project(t, "one-exec", store.Quota{Execs: 1})
	if _, err := a.st.TaskInsert(t.Context(), &store.TaskInsertParams{ProjectID: pID, Type: task.KindVMCreate,
		VM: &store.VMInsertParams{ID: "e1", Name: "e1", Image: "img", Runtime: "docker", VCPUs: 1, MemoryMB: 512, WorkerID: "w1"}}); err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	a.sb.ExecImpl = func(context.Context, *store.VM, *task.ExecParams, agentclient.ExecIO) (*store.Execution, error) {
		close(started)
		<-release
		return &store.Execution{}, nil
	}
	done := make(chan int)
	go func() {
		status, _ := a.doAs(t, key, "POST", "/api/v1/vms/e1/exec", `{"command":"sleep"}`)
		done <- status
	}()
	<-started
	status, body := a.doAs(t, key, "POST", "/api/v1/vms/e1/exec", `{"command":"true"}`)
	close(release)
	if status != http.StatusTooManyRequests || !strings.Contains(body, "concurrent execs") {
		t.Errorf("second exec = %d %s; want 429 naming concurrent execs", status, body)
	}
	if first := <-done; first != http.StatusOK {
		t.Errorf("first exec = %d; want 200", first)
	}
}

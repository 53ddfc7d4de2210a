package api

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/internal/store"
)

// TestWorkerList: admins see every worker with its load (sandboxes that
// hold resources, whatever their project); members get 403.
func TestWorkerList(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	for _, id := range []string{"w1", "w2"} {
		if _, err := a.st.WorkerUpsert(t.Context(), &store.WorkerUpsertParams{ID: id, Address: id + ":8080", Capacity: 4, Runtime: "docker"}); err != nil {
			t.Fatal(err)
		}
	}
	a.vm(t, "one", store.VMRunning) // on w1
	a.vm(t, "two", store.VMRunning)
	a.vm(t, "gone", store.VMDeleted)
	status, body := a.doAs(t, a.admin, "GET", "/api/v1/workers", "")
	var got apiv1.WorkerList
	if err := json.Unmarshal([]byte(body), &got); status != http.StatusOK || err != nil {
		t.Fatalf("GET /api/v1/workers = %d %s", status, body)
	}
	load := map[string]int{}
	for _, w := range got.Workers {
		load[w.ID] = w.Sandboxes
		if w.Capacity != 4 || w.Runtime != "docker" || w.Address != w.ID+":8080" {
			t.Errorf("worker %+v; want capacity 4, docker, %s:8080", w, w.ID)
		}
	}
	if len(got.Workers) != 2 || load["w1"] != 2 || load["w2"] != 0 {
		t.Errorf("workers' load = %v; want w1: 2, w2: 0", load)
	}
	member := a.key(t, store.DefaultProjectID, store.RoleMember, nil)
	if status, body := a.doAs(t, member, "GET", "/api/v1/workers", ""); status != http.StatusForbidden {
		t.Errorf("member GET /api/v1/workers = %d %s; want 403", status, body)
	}
}

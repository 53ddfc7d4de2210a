package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
)

// vmStatuses are every sandbox status of store.VMTransitions.
var vmStatuses = []string{store.VMCreating, store.VMPooled, store.VMRunning, store.VMPaused, store.VMStopped,
	store.VMLost, store.VMFailed, store.VMDeleting, store.VMDeleted}

// pathTo is a sequence of allowed moves from creating to status (BFS).
func pathTo(status string) []string {
	prev := map[string]string{store.VMCreating: ""}
	queue := []string{store.VMCreating}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, next := range store.VMTransitions[cur] {
			if _, seen := prev[next]; !seen {
				prev[next] = cur
				queue = append(queue, next)
			}
		}
	}
	var path []string
	for s := status; s != store.VMCreating; s = prev[s] {
		path = append([]string{s}, path...)
	}
	return path
}

// testVMStateMachine: every (from, to) pair is allowed exactly when
// store.VMTransitions says so; a refused move is ErrConflict and leaves the
// row as it was.
func testVMStateMachine(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i, from := range vmStatuses {
		for j, to := range vmStatuses {
			vm, _ := createVM(t, s, fmt.Sprintf("sm-%d-%d", i, j))
			for _, st := range pathTo(from) {
				if _, err := s.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &st}); err != nil {
					t.Fatalf("reaching %s: move to %s: %v", from, st, err)
				}
			}
			got, err := s.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &to})
			want := store.CanMove(store.VMTransitions, from, to)
			switch {
			case want && (err != nil || got.Status != to):
				t.Errorf("%s -> %s = %v, %v; want allowed", from, to, got, err)
			case !want && !errors.Is(err, errdefs.ErrConflict):
				t.Errorf("%s -> %s = %v; want ErrConflict", from, to, err)
			case !want:
				if cur, _ := s.VMGet(ctx, &store.VMGetParams{ProjectID: store.DefaultProjectID, IDOrName: vm.ID}); cur.Status != from {
					t.Errorf("refused %s -> %s left the row %s", from, to, cur.Status)
				}
			}
		}
	}
	vm, _ := createVM(t, s, "sm-if")
	running := store.VMRunning
	if _, err := s.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &running, IfStatus: []string{store.VMLost}}); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("creating -> running only if lost: %v, want ErrConflict", err)
	}
	bogus := "bogus"
	if _, err := s.VMUpdate(ctx, &store.VMUpdateParams{ID: vm.ID, Status: &bogus}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("move to an unknown status: %v, want ErrInvalidArgument", err)
	}
}

// reachable is the transitive closure of store.VMTransitions: what a
// watcher that polls may see after from.
func reachable() map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, from := range vmStatuses {
		seen := map[string]bool{from: true}
		stack := []string{from}
		for len(stack) > 0 {
			cur := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, n := range store.VMTransitions[cur] {
				if !seen[n] {
					seen[n] = true
					stack = append(stack, n)
				}
			}
		}
		out[from] = seen
	}
	return out
}

// testStateRace races what the daemon does to one sandbox at once, round
// after round, as the worker and API write it: a delete (API: deleting;
// vm:delete: deleted), a create finishing (running, or pooled and then
// claimed), an execute (its task run and its execution recorded while the
// sandbox is running), and its worker's death and return (lost, the
// execute's task failed, adopted back to running). A watcher polls the row.
// Guards issue 10: deleted went back to deleting or failed, deleting to
// running. Every status the watcher sees must be reachable from the one
// before, a deleted sandbox stays deleted, and each task is settled by
// exactly one terminal write.
func testStateRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	rounds := 200
	if testing.Short() {
		rounds = 50
	}
	reach := reachable()
	for round := range rounds {
		pool := round%2 == 1
		p := newVM(fmt.Sprintf("race-%d", round))
		if pool {
			p.Name, p.Template = fmt.Sprintf("%srace-%d", store.PoolNamePrefix, round), fmt.Sprintf("tpl-race-%d", round)
		}
		if _, err := s.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: store.DefaultProjectID, Type: "vm:create", Priority: "high", VM: p}); err != nil {
			t.Fatal(err)
		}
		exec, err := s.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: store.DefaultProjectID, Type: "vm:execute",
			Priority: "default", VMID: p.ID, Payload: json.RawMessage(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		set := func(status string, ifStatus ...string) error {
			_, err := s.VMUpdate(ctx, &store.VMUpdateParams{ID: p.ID, Status: &status, IfStatus: ifStatus})
			if err != nil && !errors.Is(err, errdefs.ErrConflict) {
				t.Errorf("round %d: move to %s: %v", round, status, err)
			}
			return err
		}
		var mu sync.Mutex
		terminal := map[string]int{} // successful terminal task writes by status
		settle := func(status string) {
			if _, err := s.TaskUpdate(ctx, &store.TaskUpdateParams{ID: exec.ID, Status: status}); err == nil {
				mu.Lock()
				terminal[status]++
				mu.Unlock()
			} else if !errors.Is(err, errdefs.ErrConflict) {
				t.Errorf("round %d: task to %s: %v", round, status, err)
			}
		}
		var deleted bool
		stop := make(chan struct{})
		var seen []string
		watched := make(chan struct{})
		go func() { // the watcher
			defer close(watched)
			for {
				if vm, err := s.VMGet(ctx, &store.VMGetParams{ProjectID: store.DefaultProjectID, IDOrName: p.ID}); err == nil &&
					(len(seen) == 0 || seen[len(seen)-1] != vm.Status) {
					seen = append(seen, vm.Status)
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
		var wg sync.WaitGroup
		wg.Go(func() { // the API's delete, then the vm:delete task
			set(store.VMDeleting)
			if set(store.VMDeleted) == nil {
				mu.Lock()
				deleted = true
				mu.Unlock()
			}
		})
		wg.Go(func() { // vm:create finishing, and a pool claim
			if !pool {
				set(store.VMRunning)
				return
			}
			if set(store.VMPooled) == nil {
				s.VMClaimPooled(ctx, &store.VMClaimParams{ProjectID: store.DefaultProjectID, TemplateID: p.Template, Name: fmt.Sprintf("claimed-%d", round)})
			}
		})
		wg.Go(func() { // vm:execute
			if _, err := s.TaskUpdate(ctx, &store.TaskUpdateParams{ID: exec.ID, Status: store.TaskRunning}); err != nil {
				return
			}
			vm, err := s.VMGet(ctx, &store.VMGetParams{ProjectID: store.DefaultProjectID, IDOrName: p.ID})
			if err == nil && vm.Status == store.VMRunning {
				e, err := s.ExecutionInsert(ctx, &store.ExecutionInsertParams{ProjectID: store.DefaultProjectID, VMID: p.ID, TaskID: exec.ID, Command: "true"})
				if err == nil {
					code := 0
					s.ExecutionFinish(ctx, &store.ExecutionFinishParams{ID: e.ID, ExitCode: &code})
				}
			}
			settle(store.TaskSucceeded)
		})
		wg.Go(func() { // the worker dies, then comes back
			if set(store.VMLost, store.VMRunning, store.VMCreating) == nil {
				settle(store.TaskFailed)
				set(store.VMRunning, store.VMLost)
			}
		})
		wg.Wait()
		settle(store.TaskFailed) // the reconciler's backstop
		close(stop)
		<-watched
		final, err := s.VMGet(ctx, &store.VMGetParams{ProjectID: store.DefaultProjectID, IDOrName: p.ID})
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, final.Status)
		for i := 1; i < len(seen); i++ {
			if !reach[seen[i-1]][seen[i]] {
				t.Errorf("round %d: sandbox went %s -> %s (seen %v), which the state machine does not allow", round, seen[i-1], seen[i], seen)
				break
			}
		}
		if deleted && final.Status != store.VMDeleted {
			t.Errorf("round %d: sandbox was deleted, then became %s (seen %v)", round, final.Status, seen)
		}
		if final.Status != store.VMDeleted {
			t.Errorf("round %d: the delete did not win: sandbox ends %s (seen %v)", round, final.Status, seen)
		}
		tk, _ := s.TaskGet(ctx, &store.TaskGetParams{ID: exec.ID})
		if n := terminal[store.TaskSucceeded] + terminal[store.TaskFailed]; n != 1 || terminal[tk.Status] != 1 {
			t.Errorf("round %d: task ends %s after terminal writes %v; want exactly one, matching", round, tk.Status, terminal)
		}
		if !slices.Contains([]string{store.TaskSucceeded, store.TaskFailed}, tk.Status) {
			t.Errorf("round %d: task ends %s", round, tk.Status)
		}
	}
}

// testExecutionAbandon: at start a worker closes the executions its dead
// process left running on its sandboxes, and only those (issue 10: rows of
// interactive execs cut off by a crash stayed running forever).
func testExecutionAbandon(t *testing.T, s store.Store) {
	ctx := context.Background()
	start := func(worker, name string, finish bool) *store.Execution {
		p := newVM(name)
		p.WorkerID = worker
		if _, err := s.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: store.DefaultProjectID, Type: "vm:create", Priority: "high", VM: p}); err != nil {
			t.Fatal(err)
		}
		e, err := s.ExecutionInsert(ctx, &store.ExecutionInsertParams{ProjectID: store.DefaultProjectID, VMID: p.ID, Command: "sleep"})
		if err != nil {
			t.Fatal(err)
		}
		if finish {
			code := 0
			e, _ = s.ExecutionFinish(ctx, &store.ExecutionFinishParams{ID: e.ID, ExitCode: &code})
		}
		return e
	}
	cut, done, other := start("w1", "ab-cut", false), start("w1", "ab-done", true), start("w2", "ab-other", false)
	n, err := s.ExecutionAbandon(ctx, &store.ExecutionAbandonParams{Error: "crashed", StartedBefore: time.Now().Add(time.Second), WorkerID: "w1"})
	if err != nil || n != 1 {
		t.Fatalf("ExecutionAbandon = %d, %v; want 1", n, err)
	}
	check := func(e *store.Execution, wantClosed bool, wantErr string) {
		list, _ := s.ExecutionList(ctx, &store.ExecutionListParams{ProjectID: store.DefaultProjectID, VMID: e.VMID})
		if len(list) != 1 || (list[0].CompletedAt != nil) != wantClosed || list[0].Error != wantErr {
			t.Errorf("execution %s after abandon: %+v, want closed %v with error %q", e.Command, list, wantClosed, wantErr)
		}
	}
	check(cut, true, "crashed")
	check(done, true, "")
	check(other, false, "")
	if n, _ := s.ExecutionAbandon(ctx, &store.ExecutionAbandonParams{Error: "crashed", StartedBefore: time.Now().Add(time.Second), WorkerID: "w1"}); n != 0 {
		t.Errorf("second ExecutionAbandon closed %d, want 0", n)
	}
}

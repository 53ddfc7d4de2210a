package api

import (
	"context"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/events"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// maxWait bounds ?wait= on GET /tasks/{id}.
const maxWait = 60 * time.Second

// handleTaskGet returns a task; with ?wait=DURATION it long-polls until the
// task is terminal or the duration passes, then returns it either way.
func (s *Server) handleTaskGet(w http.ResponseWriter, r *http.Request) {
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxWait {
			s.writeError(w, r, errdefs.InvalidArgument("wait: %q must be a duration between 0s and %s (like 30s)", v, maxWait))
			return
		}
		wait = d
	}
	deadline := time.Now().Add(wait)
	id := r.PathValue("id")
	var changes <-chan *events.Event
	if wait > 0 {
		release, ok := s.takeStream(w, r)
		if !ok {
			return
		}
		defer release()
		// Subscribe before the first read so no change slips between them.
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		changes, _ = s.cfg.Events.Subscribe(ctx)
	}
	for {
		t, err := s.store.TaskGet(r.Context(), &store.TaskGetParams{ID: id, ProjectID: project(r)})
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		left := time.Until(deadline)
		if t.Terminal() || left <= 0 {
			writeJSON(w, http.StatusOK, taskOut(t))
			return
		}
		// Wake on this task's event; re-read at least every second in case
		// an event was lost (the bus is best-effort, the store is the truth).
		// Every 250 ms, the re-reads of ten clients waiting on creates were
		// the largest item of aetherd's CPU in a create burst.
		if !waitForTask(r.Context(), changes, id, min(left, time.Second)) {
			return
		}
	}
}

// handleTaskList lists the project's tasks, oldest first, a page at a time:
// ?limit= (default 100, at most 1000), ?cursor= (the previous page's next),
// ?status=.
func (s *Server) handleTaskList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := pageLimit(q.Get("limit"), defaultPage, maxPage)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list, err := s.store.TaskList(r.Context(), &store.TaskListParams{ProjectID: project(r), Status: q.Get("status"),
		After: q.Get("cursor"), Limit: limit})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := apiv1.TaskList{Tasks: each(list, taskOut)}
	if len(list) == limit {
		out.Next = list[len(list)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
}

// waitForTask waits up to d for an event about task id; false means the
// client went away.
func waitForTask(ctx context.Context, changes <-chan *events.Event, id string, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		case e, ok := <-changes:
			if !ok {
				changes = nil
				continue
			}
			if e.TaskID == id {
				return true
			}
		}
	}
}

type createJobRequest struct {
	VMID     string   `json:"vm_id"`
	Commands []string `json:"commands"`
}

// maxJobCommands bounds the commands of one job.
const maxJobCommands = 1000

func (s *Server) handleJobCreate(w http.ResponseWriter, r *http.Request) {
	var req createJobRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(req.Commands) == 0 || len(req.Commands) > maxJobCommands {
		s.writeError(w, r, errdefs.InvalidArgument("commands: must list 1..%d commands", maxJobCommands))
		return
	}
	for i, c := range req.Commands {
		if c == "" {
			s.writeError(w, r, errdefs.InvalidArgument("commands[%d]: must not be empty", i))
			return
		}
	}
	if req.VMID == "" {
		s.writeError(w, r, errdefs.InvalidArgument("vm_id: required"))
		return
	}
	vm, err := s.store.VMGet(r.Context(), &store.VMGetParams{ProjectID: project(r), IDOrName: req.VMID})
	if err == nil {
		err = usable(vm)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	jobID := uuid.NewString()
	t, err := s.submit(r, task.JobRunArgs{JobID: jobID}, &task.SubmitParams{Route: vm.WorkerID, VMID: vm.ID,
		Job: &store.JobInsertParams{ID: jobID, VMID: vm.ID, Commands: req.Commands}})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, accepted(t, jobID))
}

func (s *Server) handleJobGet(w http.ResponseWriter, r *http.Request) {
	job, err := s.store.JobGet(r.Context(), &store.JobGetParams{ID: r.PathValue("id"), ProjectID: project(r)})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	execs, err := s.store.ExecutionList(r.Context(), &store.ExecutionListParams{ProjectID: job.ProjectID, JobID: job.ID})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiv1.JobDetail{Job: jobOut(job), Executions: each(execs, executionOut)})
}

func (s *Server) handleImageBuild(w http.ResponseWriter, r *http.Request) {
	var spec task.ImageBuildArgs
	if err := decodeJSON(w, r, &spec); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := spec.Validate(); err != nil {
		s.writeError(w, r, err)
		return
	}
	// Each Docker host needs the image: ?worker= picks the host (default: any).
	route := r.URL.Query().Get("worker")
	if route != "" {
		if err := s.workerExists(r, route); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	t, err := s.submit(r, spec, &task.SubmitParams{Route: route})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, accepted(t, ""))
}

func (s *Server) workerExists(r *http.Request, id string) error {
	ws, err := s.store.WorkerList(r.Context())
	if err != nil {
		return err
	}
	for _, w := range ws {
		if w.ID == id {
			return nil
		}
	}
	return errdefs.NotFound("worker %q is not registered", id)
}

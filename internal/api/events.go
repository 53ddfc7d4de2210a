package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/events"
)

// sseKeepAlive is how often an idle event stream sends a comment line, so
// proxies and clients can tell a quiet stream from a dead one.
const sseKeepAlive = 15 * time.Second

// eventFilter selects a project's events by query parameters; empty
// fields but project match all.
type eventFilter struct {
	project, kind, vmID, taskID string
}

func (f eventFilter) match(e *events.Event) bool {
	return e.ProjectID == f.project && (f.kind == "" || e.Kind == f.kind) && (f.vmID == "" || e.VMID == f.vmID) &&
		(f.taskID == "" || e.TaskID == f.taskID)
}

// handleEvents streams the project's task and sandbox state changes as
// Server-Sent Events (event: <kind>, data: <json>). Filters: ?kind=task|vm,
// ?vm_id= (ID or name), ?task_id=. A stream holds one of its key's
// Config.MaxStreams and has no write deadline.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := eventFilter{project: project(r), kind: q.Get("kind"), vmID: q.Get("vm_id"), taskID: q.Get("task_id")}
	if f.kind != "" && f.kind != events.KindTask && f.kind != events.KindVM {
		s.writeError(w, r, errdefs.InvalidArgument("kind: %q is not task or vm", f.kind))
		return
	}
	if f.vmID != "" {
		vm, ok := s.lookupVMByKey(w, r, f.vmID)
		if !ok {
			return
		}
		f.vmID = vm.ID
	}
	release, ok := s.takeStream(w, r)
	if !ok {
		return
	}
	defer release()
	ch, err := s.cfg.Events.Subscribe(r.Context())
	if err != nil {
		s.writeError(w, r, errdefs.Unavailable("event bus: %v", err))
		return
	}
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // a stream lasts as long as the client wants
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": subscribed\n\n")
	rc.Flush()
	tick := time.NewTicker(sseKeepAlive)
	defer tick.Stop()
	for {
		select {
		case <-s.streams.Done():
			return
		case e, ok := <-ch:
			if !ok {
				return
			}
			if !f.match(e) {
				continue
			}
			b, err := json.Marshal(eventOut(e))
			if err != nil {
				continue // cannot happen: an Event is plain data
			}
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Kind, b)
		case <-tick.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		}
		if rc.Flush() != nil {
			return
		}
	}
}

package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/logs"
)

// LogSource is where the log routes read: the local store and the live
// tail (logs.Pipeline's).
type LogSource struct {
	Store logs.Store
	Hub   *logs.Hub
}

// logStreamBuffer is how many records a slow log stream client may fall
// behind before records are dropped (and the drop count sent).
const logStreamBuffer = 4096

// logProject is the project a log request may read: every query and stream
// is confined to it.
func (s *Server) logProject(r *http.Request) string { return project(r) }

// logQuery turns the wire query into the store's, resolving a sandbox name.
func (s *Server) logQuery(w http.ResponseWriter, r *http.Request, in *apiv1.LogQuery) (*logs.Query, bool) {
	q := &logs.Query{Labels: logs.Labels{Project: s.logProject(r), TaskID: in.TaskID, ExecutionID: in.ExecutionID,
		Stream: in.Stream, Level: in.Level}, Since: in.Since, Until: in.Until, Contains: in.Contains, Limit: in.Limit,
		Direction: logs.Direction(in.Direction), Cursor: in.Cursor}
	if in.VMID != "" {
		vm, ok := s.lookupVMByKey(w, r, in.VMID)
		if !ok {
			return nil, false
		}
		q.Labels.VMID = vm.ID
	}
	if err := q.Normalize(); err != nil {
		s.writeError(w, r, errdefs.InvalidArgument("%v", err))
		return nil, false
	}
	return q, true
}

func logRecordOut(r *logs.Record) apiv1.LogRecord {
	return apiv1.LogRecord{ID: r.ID, Time: r.Time, Project: r.Project, VMID: r.VMID, TaskID: r.TaskID,
		ExecutionID: r.ExecutionID, Stream: r.Stream, Level: r.Level, Line: r.Line, Truncated: r.Truncated}
}

// handleLogQuery returns one page of log records.
func (s *Server) handleLogQuery(w http.ResponseWriter, r *http.Request) {
	var in apiv1.LogQuery
	if err := decodeJSON(w, r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	q, ok := s.logQuery(w, r, &in)
	if !ok {
		return
	}
	res, err := s.cfg.Logs.Store.Query(r.Context(), q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page := apiv1.LogPage{Records: make([]apiv1.LogRecord, 0, len(res.Records)), Next: res.Next}
	for i := range res.Records {
		page.Records = append(page.Records, logRecordOut(&res.Records[i]))
	}
	writeJSON(w, http.StatusOK, page)
}

// handleLogStream is a WebSocket: the last ?tail= records (default 0, at
// most 5000) or those since ?since= (RFC 3339), then every new record, as
// apiv1.LogStreamMessage text messages. Filters as the query's, as query
// parameters. A client that reads too slowly misses records and is told
// how many.
func (s *Server) handleLogStream(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Query()
	in := apiv1.LogQuery{VMID: p.Get("vm_id"), TaskID: p.Get("task_id"), ExecutionID: p.Get("execution_id"),
		Stream: p.Get("stream"), Level: p.Get("level"), Contains: p.Get("contains"), Direction: string(logs.Forward)}
	var err error
	if v := p.Get("since"); v != "" {
		if in.Since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			s.writeError(w, r, errdefs.InvalidArgument("since: %q is not an RFC 3339 time", v))
			return
		}
	}
	tail := 0
	if v := p.Get("tail"); v != "" {
		if tail, err = strconv.Atoi(v); err != nil || tail < 0 || tail > logs.MaxLimit {
			s.writeError(w, r, errdefs.InvalidArgument("tail: %q is not between 0 and %d", v, logs.MaxLimit))
			return
		}
	}
	q, ok := s.logQuery(w, r, &in)
	if !ok {
		return
	}
	liftDeadlines(w) // a tail lasts as long as the client wants
	// Subscribe before reading the backlog, so nothing falls in between;
	// records the backlog already sent are skipped by ID.
	sub := s.cfg.Logs.Hub.Subscribe(*q, logStreamBuffer)
	defer sub.Close()
	var backlog []logs.Record
	if tail > 0 || !in.Since.IsZero() {
		bq := *q
		bq.Limit = max(tail, 1)
		if !in.Since.IsZero() {
			bq.Limit = logs.MaxLimit
		} else {
			bq.Direction = logs.Backward
		}
		res, err := s.cfg.Logs.Store.Query(r.Context(), &bq)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		backlog = res.Records
		if bq.Direction == logs.Backward {
			slices.Reverse(backlog)
		}
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept wrote the response
	}
	defer c.CloseNow()
	ctx := c.CloseRead(r.Context()) // the client sends nothing; its close ends ctx
	var last int64
	send := func(m *apiv1.LogStreamMessage) error {
		b, _ := json.Marshal(m)
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return c.Write(wctx, websocket.MessageText, b)
	}
	for i := range backlog {
		rec := logRecordOut(&backlog[i])
		if err := send(&apiv1.LogStreamMessage{Record: &rec}); err != nil {
			return
		}
		last = backlog[i].ID
	}
	var reported uint64
	for {
		select {
		case <-s.streams.Done():
			c.Close(websocket.StatusGoingAway, "server shutting down")
			return
		case <-ctx.Done():
			return
		case r, ok := <-sub.C():
			if !ok {
				return
			}
			if r.ID != 0 && r.ID <= last {
				continue
			}
			if d := sub.Dropped(); d != reported {
				reported = d
				if err := send(&apiv1.LogStreamMessage{Dropped: d}); err != nil {
					return
				}
			}
			rec := logRecordOut(&r)
			if err := send(&apiv1.LogStreamMessage{Record: &rec}); err != nil {
				if !errors.Is(err, context.Canceled) {
					s.log.DebugContext(ctx, "log stream ended", "err", err)
				}
				return
			}
		}
	}
}

package api

import (
	"errors"
	"log/slog"
	"net/http"
	"unicode/utf8"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/internal/events"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// The wire types of apiv1 are converted from store rows, not aliased: a
// field added to a row stops these conversions from compiling until it is
// added to the wire type too (a change of the API, and of openapi.json) or
// mapped explicitly.

func vmOut(vm *store.VM) *apiv1.VM { return (*apiv1.VM)(vm) }

// taskOut never shows a task's secrets (an exec's env): task.Redact.
func taskOut(t *store.Task) *apiv1.Task {
	out := *t
	out.Payload = task.Redact(t.Payload)
	return (*apiv1.Task)(&out)
}

func jobOut(j *store.Job) *apiv1.Job { return (*apiv1.Job)(j) }

// executionOut is e as JSON shows it. Output kept up to the cap may end in
// the first bytes of a multi-byte character; as text it is cut before that
// character rather than shown as U+FFFD. The stored bytes stay exact.
func executionOut(e *store.Execution) *apiv1.Execution {
	out := *(*apiv1.Execution)(e)
	out.Stdout, out.Stderr = cutRune(out.Stdout, out.StdoutTruncated), cutRune(out.Stderr, out.StderrTruncated)
	return &out
}

// cutRune drops an incomplete UTF-8 character at the end of output cut at
// its cap (truncated); other output is returned as it is.
func cutRune(s string, truncated bool) string {
	if !truncated {
		return s
	}
	for i := len(s) - 1; i >= 0 && i >= len(s)-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			if !utf8.FullRuneInString(s[i:]) {
				return s[:i]
			}
			break
		}
	}
	return s
}

func templateOut(t *store.Template) *apiv1.Template { return (*apiv1.Template)(t) }
func eventOut(e *events.Event) *apiv1.Event         { return (*apiv1.Event)(e) }

// each converts a list, keeping nil as nil (JSON null) and empty as empty.
func each[T, U any](in []T, f func(T) U) []U {
	if in == nil {
		return nil
	}
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

// accepted is the 202 body of a request that queued t.
func accepted(t *store.Task, jobID string) apiv1.Accepted {
	return apiv1.Accepted{TaskID: t.ID, VMID: t.VMID, JobID: jobID, Status: t.Status}
}

// submit creates a task of the request's project through task.Submit. A
// message that could not be sent is logged, not returned: the row is the
// truth and the reconciler sends it later, so the request still succeeds.
func (s *Server) submit(r *http.Request, args task.Args, p *task.SubmitParams) (*store.Task, error) {
	ctx := r.Context()
	p.ProjectID = project(r)
	t, err := task.Submit(ctx, s.store, s.queue, args, p)
	if errors.Is(err, task.ErrNotEnqueued) {
		s.log.WarnContext(ctx, "enqueue failed; the reconciler will retry", slog.String("task_id", t.ID), slog.Any("err", err))
		return t, nil
	}
	return t, err
}

package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/aetherium/aetherium/internal/auth"
	"github.com/aetherium/aetherium/internal/store"
)

// auditQueue bounds entries waiting to be written.
const auditQueue = 4096

// auditBatch bounds the entries written at once (see auditor.writeQueued).
const auditBatch = 256

// auditor writes an audit entry for each mutating request: key prefix,
// project, action (the route pattern, which includes the method), object
// (the path's id or name) and status. Entries are written off the request
// path, so an exec does not wait for an insert; when the
// store falls behind by auditQueue entries, further ones are logged and
// dropped rather than stalling the API.
type auditor struct {
	st  store.Tenancy
	log *slog.Logger
	ch  chan *store.AuditInsertParams
}

func newAuditor(st store.Tenancy, log *slog.Logger) *auditor {
	return &auditor{st: st, log: log, ch: make(chan *store.AuditInsertParams, auditQueue)}
}

func (a *auditor) record(p *auth.Principal, r *http.Request, status int) {
	object := r.PathValue("id")
	if object == "" {
		object = r.PathValue("name")
	}
	e := &store.AuditInsertParams{KeyPrefix: p.KeyPrefix, ProjectID: p.ProjectID, Action: r.Pattern, Object: object, Status: status}
	a.add(r.Context(), e)
}

func (a *auditor) add(ctx context.Context, e *store.AuditInsertParams) {
	select {
	case a.ch <- e:
	default:
		a.log.WarnContext(ctx, "audit queue full; entry dropped", slog.String("action", e.Action),
			slog.String("key_prefix", e.KeyPrefix), slog.String("object", e.Object), slog.Int("status", e.Status))
	}
}

// run writes entries until done, then what is still queued.
func (a *auditor) run(done <-chan struct{}) {
	for {
		select {
		case e := <-a.ch:
			a.writeQueued(e)
		case <-done:
			for {
				select {
				case e := <-a.ch:
					a.writeQueued(e)
				default:
					return
				}
			}
		}
	}
}

// writeQueued writes e and the entries queued behind it (up to
// auditBatch) in one call, in order, so the store commits them together
// (one flush) instead of one after another.
func (a *auditor) writeQueued(e *store.AuditInsertParams) {
	batch := []*store.AuditInsertParams{e}
	for len(batch) < auditBatch {
		select {
		case e := <-a.ch:
			batch = append(batch, e)
			continue
		default:
		}
		break
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.st.AuditInsert(ctx, batch...); err != nil {
		a.log.Warn("write audit entries", slog.Int("entries", len(batch)), slog.String("first_action", e.Action),
			slog.String("key_prefix", e.KeyPrefix), slog.Any("err", err))
	}
}

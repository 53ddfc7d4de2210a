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

// auditor writes an audit entry for each mutating request: key prefix,
// project, action (the route pattern, which includes the method), object
// (the path's id or name) and status. Entries are written by one goroutine,
// off the request path, so an exec does not wait for an insert; when the
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
	write := func(e *store.AuditInsertParams) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.st.AuditInsert(ctx, e); err != nil {
			a.log.Warn("write audit entry", slog.String("action", e.Action), slog.String("key_prefix", e.KeyPrefix), slog.Any("err", err))
		}
	}
	for {
		select {
		case e := <-a.ch:
			write(e)
		case <-done:
			for {
				select {
				case e := <-a.ch:
					write(e)
				default:
					return
				}
			}
		}
	}
}

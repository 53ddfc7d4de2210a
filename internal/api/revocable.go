package api

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/aetherium/aetherium/internal/auth"
	"github.com/aetherium/aetherium/internal/errdefs"
)

// errCredentialEnded is the cause of a request context cut because the key
// or preview token that opened it was revoked, expired or deleted.
var errCredentialEnded = errors.New("the credential of this request was revoked or expired")

// whileValid returns a context that ends when parent does, at until (the
// credential's expiry; zero means none), or when check,
// run every interval while the request lasts, reports that the request's
// credential no longer holds. A request shorter than interval never runs
// check; one that lasts (an event stream, a terminal, a port's WebSocket)
// ends within about interval of a revocation. Only an answer that the
// credential is gone (credentialEnded) cuts it: a check that fails because
// the store cannot answer keeps the request, so an outage of the store does
// not cut every open terminal. stop releases the timer; call it when the
// request ends.
func whileValid(parent context.Context, interval time.Duration, until time.Time, check func(context.Context) error) (ctx context.Context, stop func()) {
	endAtUntil := func() {}
	if !until.IsZero() {
		parent, endAtUntil = context.WithDeadlineCause(parent, until, errCredentialEnded)
	}
	ctx, cancel := context.WithCancelCause(parent)
	var (
		mu    sync.Mutex
		timer *time.Timer
	)
	tick := func() {
		if ctx.Err() != nil {
			return
		}
		if err := check(ctx); ctx.Err() == nil && credentialEnded(err) {
			cancel(errCredentialEnded)
			return
		}
		mu.Lock()
		timer.Reset(interval)
		mu.Unlock()
	}
	mu.Lock()
	timer = time.AfterFunc(interval, tick)
	mu.Unlock()
	return ctx, func() {
		cancel(nil)
		endAtUntil()
		mu.Lock()
		timer.Stop()
		mu.Unlock()
	}
}

// credentialEnded reports whether err says the credential no longer holds:
// unknown, revoked or expired (401), no longer allowed (403), or its
// project gone (404).
func credentialEnded(err error) bool {
	var he *httpError
	return errors.Is(err, auth.ErrUnauthenticated) || errors.Is(err, errdefs.ErrNotFound) ||
		(errors.As(err, &he) && (he.status == http.StatusUnauthorized || he.status == http.StatusForbidden))
}

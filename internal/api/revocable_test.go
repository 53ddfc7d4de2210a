package api

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/auth"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/events"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/google/uuid"
)

// TestWhileValid: the context lives while the check passes or cannot be
// answered (the store is down), ends with errCredentialEnded once it fails,
// and a request that ends before the first interval never runs the check.
// TestCredentialEnded lists the answers that count as gone.
func TestWhileValid(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var answer atomic.Pointer[error]
	down := error(errors.New("database is locked"))
	answer.Store(&down)
	ctx, stop := whileValid(t.Context(), 10*time.Millisecond, time.Time{}, func(context.Context) error {
		calls.Add(1)
		return *answer.Load()
	})
	defer stop()
	for calls.Load() < 3 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if ctx.Err() != nil {
		t.Fatalf("cut after %d checks the store could not answer: %v", calls.Load(), context.Cause(ctx))
	}
	gone := errdefs.NotFound("project p not found")
	answer.Store(&gone)
	select {
	case <-ctx.Done():
		if !errors.Is(context.Cause(ctx), errCredentialEnded) {
			t.Fatalf("cause %v", context.Cause(ctx))
		}
	case <-time.After(time.Minute): // failure bound only
		t.Fatal("a failed check did not end the context")
	}

	var short atomic.Int32
	_, stop = whileValid(t.Context(), 20*time.Millisecond, time.Time{}, func(context.Context) error { short.Add(1); return nil })
	stop()
	time.Sleep(60 * time.Millisecond)
	if n := short.Load(); n != 0 {
		t.Fatalf("a finished request's check ran %d times", n)
	}

	// A credential that expires ends the context then, though every check
	// in between passed.
	ctx, stop = whileValid(t.Context(), time.Hour, time.Now().Add(50*time.Millisecond), func(context.Context) error { return nil })
	defer stop()
	select {
	case <-ctx.Done():
		if !errors.Is(context.Cause(ctx), errCredentialEnded) {
			t.Fatalf("cause at expiry %v", context.Cause(ctx))
		}
	case <-time.After(time.Minute): // failure bound only
		t.Fatal("the context outlived its credential's expiry")
	}
}

// TestStreamEndsWithRevokedKey: an event stream opened with a key lives on
// while the key holds (several recheck intervals) and ends once an admin
// revokes the key, instead of streaming to a revoked client forever, even
// when its address has no unknown-key lookups left.
func TestStreamEndsWithRevokedKey(t *testing.T) {
	t.Parallel()
	a := newTestAPIWith(t, func(_ *testAPI, cfg *Config) { cfg.AuthCacheTTL = 50 * time.Millisecond })
	frozen := time.Now()
	a.s.keyFails.now = func() time.Time { return frozen }
	key, prefix, hash := auth.NewKey()
	id := uuid.NewString()
	if _, err := a.st.APIKeyInsert(t.Context(), &store.APIKeyInsertParams{ID: id, ProjectID: store.DefaultProjectID,
		Prefix: prefix, Hash: hash, Role: store.RoleMember}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.s)
	defer srv.Close()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := srv.Client().Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("events: %v %v", resp, err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	time.Sleep(300 * time.Millisecond) // six rechecks of a valid key
	a.s.cfg.Events.Publish(t.Context(), &events.Event{Kind: events.KindVM, Status: "running", VMID: "still-open", ProjectID: store.DefaultProjectID})
	readEvent(t, br)
	// The key's holder empties its own address's bucket (random keys):
	// the rechecks must not depend on it (its clock is frozen: no refill).
	for {
		if _, _, ok := a.s.keyFails.take("127.0.0.1"); !ok {
			break
		}
	}
	if status, body := a.do(t, "DELETE", "/api/v1/keys/"+id, ""); status != http.StatusOK {
		t.Fatalf("revoke: %d %s", status, body)
	}
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := br.ReadString('\n'); err != nil {
				ended <- err
				return
			}
		}
	}()
	select {
	case <-ended:
	case <-time.After(time.Minute): // failure bound only
		t.Fatal("the stream outlived its key's revocation")
	}
}

func TestCredentialEnded(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{nil, false}, {errors.New("database is locked"), false}, {errdefs.Unavailable("store down"), false},
		{context.Canceled, false}, {auth.ErrUnauthenticated, true}, {errPreviewToken, true},
		{forbidden("this route needs an admin key"), true}, {errdefs.NotFound("project gone"), true},
	} {
		if got := credentialEnded(tt.err); got != tt.want {
			t.Errorf("credentialEnded(%v) = %v; want %v", tt.err, got, tt.want)
		}
	}
}

package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aetherium/aetherium/internal/auth"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
)

// ProjectHeader lets an admin key act in another project (ID or name); a
// member key may only name its own. Without it a request acts in its key's
// project.
const ProjectHeader = "X-Aether-Project"

// guard wraps a route's handler with everything the route table declares,
// in this order: Host allowlist and cross-origin protection (every route),
// credentials for its access (signed routes check their own), the project
// the request acts in, the key's rate limit for its class, the request's
// media type, and an audit entry for mutating requests. A request that
// outlives its key's revocation or expiry is cut (whileValid). Refusals are JSON errors; an unauthenticated
// request gets the same 401 whatever was wrong with its key.
func (s *Server) guard(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.checkHost(r); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.cop.Check(r); err != nil {
			s.writeError(w, r, forbidden("cross-origin request refused"))
			return
		}
		switch rt.access {
		case open, signed:
			rt.handler(w, r)
			return
		case internal:
			if !tokenOK(r, s.cfg.InternalToken) {
				s.writeError(w, r, auth.ErrUnauthenticated)
				return
			}
			rt.handler(w, r)
			return
		case scrape:
			if s.cfg.MetricsToken != "" && tokenOK(r, s.cfg.MetricsToken) {
				rt.handler(w, r)
				return
			}
		}
		p, err := s.authenticate(r, rt.access)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		ctx, stop := whileValid(r.Context(), s.cfg.AuthCacheTTL, p.ExpiresAt, func(context.Context) error {
			_, err := s.authenticateBy(r, rt.access, s.recheckKey)
			return err
		})
		defer stop()
		r = r.WithContext(auth.WithPrincipal(ctx, p))
		if wait, ok := s.limits.allow(p.KeyPrefix, rt.class); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(max(time.Second, wait.Round(time.Second))/time.Second)))
			s.writeError(w, r, rateLimited("rate limit of key %s exceeded for this kind of request; retry later", p.KeyPrefix))
			return
		}
		if rt.body == jsonBody && hasBody(r.Method) && !isJSON(r.Header.Get("Content-Type")) {
			s.writeError(w, r, unsupportedMedia("Content-Type must be application/json"))
			return
		}
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			rt.handler(w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		rt.handler(rec, r)
		s.audit.record(p, r, rec.status)
	}
}

// authenticate returns the principal of the request's key (its bearer
// token, or its dashboard session cookie with the CSRF token that needs),
// acting in the project it asks for, if its role may call a route of
// access a.
func (s *Server) authenticate(r *http.Request, a access) (*auth.Principal, error) {
	return s.authenticateBy(r, a, s.authKey)
}

// authenticateBy is authenticate with the key checked by check: authKey
// for a request's first check, recheckKey for the rechecks of one that
// lasts.
func (s *Server) authenticateBy(r *http.Request, a access, check func(*http.Request, string) (*auth.Principal, error)) (*auth.Principal, error) {
	key, fromCookie, err := credentials(r, s.sessionCookie(r))
	if err != nil {
		return nil, err
	}
	p, err := check(r, key)
	if err != nil {
		return nil, err
	}
	if fromCookie {
		if err := checkCSRF(r, key); err != nil {
			return nil, err
		}
	}
	if (a == admin || a == scrape) && !p.Admin() {
		return nil, forbidden("this route needs an admin key")
	}
	want := r.Header.Get(ProjectHeader)
	if want == "" || want == p.ProjectID {
		return p, nil
	}
	if !p.Admin() {
		return nil, errdefs.NotFound("project %s not found", want)
	}
	proj, err := s.store.ProjectGet(r.Context(), want)
	if err != nil {
		return nil, err
	}
	acting := *p
	acting.ProjectID = proj.ID
	return &acting, nil
}

// authKey authenticates a presented API key: from the auth cache when it
// can; else from the store, where a key not seen before (not a refresh of
// a cached row of this very key) is a guess charged to the client's
// address first (addrfails.go) and refunded once it proves good. An
// address with no lookups left gets 429 instead of a store lookup; keys
// the cache knows, fresh or stale, are never refused that way.
func (s *Server) authKey(r *http.Request, key string) (*auth.Principal, error) {
	switch p, hit, known, err := s.auth.Cached(key); {
	case hit:
		return p, err
	case known:
		return s.recheckKey(r, key)
	}
	refund, wait, ok := s.keyFails.take(clientAddr(r))
	if !ok {
		return nil, s.retryLater(nil, wait, "too many unknown API keys from this address; retry later")
	}
	p, err := s.auth.Authenticate(r.Context(), key)
	if !errors.Is(err, auth.ErrUnauthenticated) {
		refund()
	}
	return p, err
}

// recheckKey checks a key again for a request that lasts (whileValid),
// never charged to an address: such lookups are bounded by the open
// requests, and a client emptying its own bucket must not keep a revoked
// key's stream open.
func (s *Server) recheckKey(r *http.Request, key string) (*auth.Principal, error) {
	return s.auth.Authenticate(r.Context(), key)
}

// project is the project the request acts in: its principal's (guard puts
// one in the context of every key-guarded route), or on internal routes,
// whose caller holds the cluster token, the project header the router sends.
func project(r *http.Request) string {
	if p := auth.FromContext(r.Context()); p != nil {
		return p.ProjectID
	}
	if p := r.Header.Get(ProjectHeader); p != "" {
		return p
	}
	return store.DefaultProjectID
}

func tokenOK(r *http.Request, token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+token)) == 1
}

func hasBody(method string) bool {
	return method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// checkHost refuses a Host that is not allowed: the defence against DNS
// rebinding, where a page on the attacker's domain resolves it to
// 127.0.0.1 and reads the answers. IP literals cannot be rebound and are
// always allowed; names must be "localhost", the listen host, or listed in
// Config.AllowedHosts ("*" allows every name).
func (s *Server) checkHost(r *http.Request) error {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "" || net.ParseIP(host) != nil || s.hosts[host] || s.hosts["*"] {
		return nil
	}
	return misdirected("host %q is not allowed (config api.allowed_hosts)", host)
}

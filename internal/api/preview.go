package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/internal/auth"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
)

// Preview hosts serve one port of one sandbox at the root of an origin of
// its own: {port}-{sandbox ID}.{Config.PreviewDomain}. Only the ID names
// the sandbox: a name is unique only within a project, so two projects'
// sandboxes named "web" would share the origin 8000-web.… (cookies,
// service workers, storage). "65535-" and a 36-character UUID make 42
// characters, a valid DNS label (at most 63). The request's path
// reaches the sandbox as it is, which apps that assume they live at "/"
// need. A preview host serves nothing but that proxy: no API route, no
// dashboard, and aetherd's own cookies are never set or read there (the
// dashboard's session cookie is host-only on the API's host).
//
// A request to a preview host is let in by an API key of the sandbox's
// project (Authorization: Bearer, which is then removed) or by a preview
// token of exactly that sandbox and port: in the X-Aether-Preview-Token
// header, in the preview cookie, or, on a browser's first visit, in the
// aether_preview_token query parameter, which sets the cookie (host-only,
// HttpOnly, SameSite=Lax) and redirects to the same URL without it. A
// token's Authorization header, if any, is the app's and passes through.
const (
	// PreviewTokenHeader carries a preview token.
	PreviewTokenHeader = "X-Aether-Preview-Token"
	// previewCookie keeps a browser's preview token on one preview host.
	previewCookie = "aether_preview"
	// previewQuery carries a preview token on a browser's first visit.
	previewQuery = "aether_preview_token"
	// previewTokenPrefix starts every preview token's secret.
	previewTokenPrefix = "aep_"
	// defaultPreviewTTL and maxPreviewTTL bound a token's lifetime.
	defaultPreviewTTL = 24 * time.Hour
	maxPreviewTTL     = 7 * 24 * time.Hour
)

// previewLabel returns the first label of r's Host when the Host is under
// Config.PreviewDomain (the domain itself gives ""); ok is false for every
// other Host, which the API serves.
func (s *Server) previewLabel(r *http.Request) (label string, ok bool) {
	if s.cfg.PreviewDomain == "" {
		return "", false
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == s.cfg.PreviewDomain {
		return "", true
	}
	return strings.CutSuffix(host, "."+s.cfg.PreviewDomain)
}

// parsePreviewLabel splits a preview host's first label, {port}-{sandbox
// ID}, at its first dash. The ID must be a UUID in its canonical form
// (lower case, with dashes), so each sandbox port has exactly one origin.
func parsePreviewLabel(label string) (port int, vm string, err error) {
	p, vm, ok := strings.Cut(label, "-")
	if !ok || !canonicalUUID(vm) || p == "" || strings.TrimLeft(p, "0123456789") != "" || p[0] == '0' {
		return 0, "", errdefs.NotFound("not a preview host: want {port}-{sandbox ID}.<preview domain>")
	}
	port, err = strconv.Atoi(p)
	if err != nil || port > 65535 {
		return 0, "", errdefs.NotFound("not a preview host: port %s is not between 1 and 65535", p)
	}
	return port, vm, nil
}

// canonicalUUID says s is a UUID written as uuid.NewString writes one.
func canonicalUUID(s string) bool {
	id, err := uuid.Parse(s)
	return err == nil && id.String() == s
}

// servePreview serves a request to a preview host.
func (s *Server) servePreview(w http.ResponseWriter, r *http.Request, label string) {
	port, ref, err := parsePreviewLabel(label)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	vm, byKey, cred, err := s.previewAccess(w, r, port, ref)
	if err != nil || vm == nil { // nil, nil: previewAccess answered (a redirect)
		if err != nil {
			s.writeError(w, r, err)
		}
		return
	}
	ctx, stop := whileValid(r.Context(), s.cfg.AuthCacheTTL, cred.until, cred.holds) // a WebSocket or event stream ends with its credential
	defer stop()
	r = r.WithContext(ctx)
	liftDeadlines(w)
	s.portProxy(s.sandboxes, vm, port, portRoute{
		path:    func(r *http.Request) (string, string) { return r.URL.Path, r.URL.RawPath },
		strip:   func(r *http.Request) { stripPreviewCredentials(r, byKey) },
		confine: confinePreviewResponse,
	}).ServeHTTP(w, r)
}

// credential is what let a request in, for whileValid: when it expires
// (zero: never), and how to tell it still holds.
type credential struct {
	until time.Time
	holds func(context.Context) error
}

// previewAccess authenticates a preview request and returns the sandbox it
// may reach; byKey says an API key (not a token) let it in, cred is that key
// or token (for a request that lasts). A token in the query is answered
// here with its cookie and a redirect (nil, false, zero, nil).
func (s *Server) previewAccess(w http.ResponseWriter, r *http.Request, port int, ref string) (vm *store.VM, byKey bool, cred credential, err error) {
	if secret := r.URL.Query().Get(previewQuery); secret != "" {
		if _, _, err := s.previewToken(r, secret, port, ref); err != nil {
			return nil, false, cred, err
		}
		http.SetCookie(w, &http.Cookie{Name: previewCookie, Value: secret, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil || s.cfg.SecureCookies})
		q := r.URL.Query()
		q.Del(previewQuery)
		to := url.URL{Scheme: previewScheme(r, s.cfg.SecureCookies), Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: q.Encode()}
		http.Redirect(w, r, to.String(), http.StatusFound)
		return nil, false, cred, nil
	}
	secret := r.Header.Get(PreviewTokenHeader)
	if c, err := r.Cookie(previewCookie); secret == "" && err == nil {
		secret = c.Value
	}
	if secret != "" {
		vm, t, err := s.previewToken(r, secret, port, ref)
		if err != nil {
			return nil, false, cred, err
		}
		return vm, false, credential{t.ExpiresAt, s.previewTokenHolds(t)}, nil
	}
	if r.Header.Get("Authorization") == "" {
		return nil, false, cred, auth.ErrUnauthenticated
	}
	p, err := s.authenticate(r, member)
	if err != nil {
		return nil, false, cred, err
	}
	if wait, ok := s.limits.allow(p.KeyPrefix, classDefault); !ok {
		return nil, false, cred, s.retryLater(w, wait, "rate limit of key "+p.KeyPrefix+" exceeded; retry later")
	}
	vm, err = s.store.VMGet(r.Context(), &store.VMGetParams{ProjectID: p.ProjectID, IDOrName: ref})
	if err == nil && vm.ID != ref { // a sandbox named like another's ID
		return nil, true, cred, errdefs.NotFound("sandbox %s not found", ref)
	}
	keyHolds := func(context.Context) error { _, err := s.authenticateBy(r, member, s.recheckKey); return err }
	return vm, true, credential{p.ExpiresAt, keyHolds}, err
}

// previewTokenHolds tells whether t is still live: neither revoked (or
// deleted with its sandbox) nor expired.
func (s *Server) previewTokenHolds(t *store.PreviewToken) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := s.liveToken(ctx, t.Hash)
		return err
	}
}

// previewToken checks a preview token's secret against the sandbox ID and
// port of the host it came to, and takes one request from its rate limit
// before the sandbox is read. Its lookup is charged to the client's bucket
// (previewFails) first and refunded unless the token is unknown, expired
// or revoked (401), so an empty bucket is 429 before the store is asked; a
// valid token of another sandbox or port is 404.
func (s *Server) previewToken(r *http.Request, secret string, port int, ref string) (*store.VM, *store.PreviewToken, error) {
	refund, wait, ok := s.previewFails.take(clientAddr(r))
	if !ok {
		return nil, nil, s.retryLater(nil, wait, "too many unknown preview tokens from this address; retry later")
	}
	t, err := s.previewTokenByHash(r, secret)
	if !errors.Is(err, errPreviewToken) {
		refund()
	}
	if err != nil {
		return nil, nil, err
	}
	if wait, ok := s.limits.allow("preview:"+t.ID, classPreview); !ok {
		return nil, nil, s.retryLater(nil, wait, "rate limit of this preview token exceeded; retry later")
	}
	if t.Port != port || t.VMID != ref {
		return nil, nil, errdefs.NotFound("this preview token does not open port %d of sandbox %s", port, ref)
	}
	vm, err := s.store.VMGet(r.Context(), &store.VMGetParams{ProjectID: t.ProjectID, IDOrName: t.VMID})
	return vm, t, err
}

// previewTokenByHash is the live token with secret; errPreviewToken when
// there is none.
func (s *Server) previewTokenByHash(r *http.Request, secret string) (*store.PreviewToken, error) {
	if !strings.HasPrefix(secret, previewTokenPrefix) || len(secret) > 100 {
		return nil, errPreviewToken
	}
	return s.liveToken(r.Context(), previewHash(secret))
}

// liveToken is the unexpired token whose secret hashes to hash;
// errPreviewToken when there is none.
func (s *Server) liveToken(ctx context.Context, hash string) (*store.PreviewToken, error) {
	t, err := s.store.PreviewTokenByHash(ctx, hash)
	if errors.Is(err, errdefs.ErrNotFound) || (err == nil && !time.Now().Before(t.ExpiresAt)) {
		return nil, errPreviewToken
	}
	return t, err
}

// errPreviewToken answers an unknown, expired or revoked preview token.
var errPreviewToken = &httpError{http.StatusUnauthorized, "unauthenticated",
	"a valid preview token or API key is required (" + PreviewTokenHeader + ", or Authorization: Bearer <key>)"}

// retryLater is a 429 that tells w's client (when w is set) when to retry.
func (s *Server) retryLater(w http.ResponseWriter, wait time.Duration, msg string) error {
	if w != nil {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(time.Second, wait.Round(time.Second))/time.Second)))
	}
	return rateLimited("%s", msg)
}

// stripPreviewCredentials removes what let a request into a preview host
// (and aetherd's session cookie, should a browser send one): the token in
// every form, and the API key when that was it.
func stripPreviewCredentials(r *http.Request, byKey bool) {
	if byKey {
		r.Header.Del("Authorization")
	}
	r.Header.Del(ProjectHeader)
	r.Header.Del(PreviewTokenHeader)
	cookies := r.Cookies()
	r.Header.Del("Cookie")
	for _, c := range cookies {
		if c.Name != previewCookie && !isSessionCookie(c.Name) {
			r.AddCookie(c)
		}
	}
	if q := r.URL.Query(); q.Has(previewQuery) {
		q.Del(previewQuery)
		r.URL.RawQuery = q.Encode()
	}
}

// confinePreviewResponse keeps a sandbox's cookies on its own preview host:
// a Domain attribute (which would reach every other preview host, or a
// parent domain the API shares) is dropped, and so are cookies that would
// replace the preview token's or look like aetherd's session.
func confinePreviewResponse(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	var kept []string
	for _, v := range h.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(v)
		if err != nil || c.Name == previewCookie || isSessionCookie(c.Name) || c.Valid() != nil {
			continue
		}
		c.Domain = ""
		kept = append(kept, c.String())
	}
	h.Del("Set-Cookie")
	for _, v := range kept {
		h.Add("Set-Cookie", v)
	}
}

// previewScheme is the scheme clients reach aetherd by.
func previewScheme(r *http.Request, secure bool) string {
	if r.TLS != nil || secure {
		return "https"
	}
	return "http"
}

// previewHash is what the store keeps of a token's secret. The secret is
// 256 random bits, so a plain SHA-256 is as good as a slow hash.
func previewHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// newPreviewSecret returns a new token's secret.
func newPreviewSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return previewTokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// previewURL is the preview host of a sandbox's port, reached like this
// request reached aetherd (scheme and port).
func (s *Server) previewURL(r *http.Request, vm *store.VM, port int) string {
	host := strconv.Itoa(port) + "-" + vm.ID + "." + s.cfg.PreviewDomain
	if _, p, err := net.SplitHostPort(r.Host); err == nil {
		host = net.JoinHostPort(host, p)
	}
	return previewScheme(r, s.cfg.SecureCookies) + "://" + host + "/"
}

// handlePreviewCreate serves POST /vms/{id}/previews: a new preview token
// of one of the sandbox's ports, with its secret and URL (shown only now).
func (s *Server) handlePreviewCreate(w http.ResponseWriter, r *http.Request) {
	vm, ok := s.lookupVM(w, r)
	if !ok {
		return
	}
	var in apiv1.PreviewRequest
	if err := decodeJSON(w, r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkPreviewRequest(&in); err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.cfg.PreviewDomain == "" {
		s.writeError(w, r, errdefs.FailedPrecondition("preview hosts are off: set api.preview_domain in aetherd's config"))
		return
	}
	ttl := defaultPreviewTTL
	if in.TTLSeconds > 0 {
		ttl = time.Duration(in.TTLSeconds) * time.Second
	}
	secret := newPreviewSecret()
	t, err := s.store.PreviewTokenInsert(r.Context(), &store.PreviewTokenInsertParams{ID: uuid.NewString(), ProjectID: vm.ProjectID,
		VMID: vm.ID, Port: in.Port, Hash: previewHash(secret), ExpiresAt: time.Now().Add(ttl)})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := s.previewOut(r, vm)(t)
	out.Token, out.TokenURL = secret, out.URL+"?"+previewQuery+"="+secret
	writeJSON(w, http.StatusCreated, out)
}

func checkPreviewRequest(in *apiv1.PreviewRequest) error {
	if in.Port < 1 || in.Port > 65535 {
		return errdefs.InvalidArgument("port: %d is not between 1 and 65535", in.Port)
	}
	if in.TTLSeconds < 0 || in.TTLSeconds > int64(maxPreviewTTL/time.Second) {
		return errdefs.InvalidArgument("ttl_seconds: %d is not between 0 (24 hours) and %d (7 days)", in.TTLSeconds, int64(maxPreviewTTL/time.Second))
	}
	return nil
}

// handlePreviewList serves GET /vms/{id}/previews: the sandbox's preview
// tokens, newest first, without their secrets.
func (s *Server) handlePreviewList(w http.ResponseWriter, r *http.Request) {
	vm, ok := s.lookupVM(w, r)
	if !ok {
		return
	}
	ts, err := s.store.PreviewTokenList(r.Context(), vm.ProjectID, vm.ID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiv1.PreviewList{Previews: each(ts, s.previewOut(r, vm))})
}

// handlePreviewDelete serves DELETE /vms/{id}/previews/{token}: it revokes
// a preview token at once.
func (s *Server) handlePreviewDelete(w http.ResponseWriter, r *http.Request) {
	vm, ok := s.lookupVM(w, r)
	if !ok {
		return
	}
	if err := s.store.PreviewTokenDelete(r.Context(), vm.ProjectID, vm.ID, r.PathValue("token")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) previewOut(r *http.Request, vm *store.VM) func(*store.PreviewToken) *apiv1.Preview {
	return func(t *store.PreviewToken) *apiv1.Preview {
		u := ""
		if s.cfg.PreviewDomain != "" {
			u = s.previewURL(r, vm, t.Port)
		}
		return &apiv1.Preview{ID: t.ID, VMID: t.VMID, Port: t.Port, URL: u, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt}
	}
}

package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/internal/auth"
	"github.com/aetherium/aetherium/internal/errdefs"
)

// A dashboard session is the API key itself, kept by the browser in the
// session cookie (HttpOnly, so the page's scripts never see it;
// SameSite=Strict, so no other site's request carries it; Secure over TLS;
// no expiry, so it ends with the browser session). Every request
// authenticates the key again, so a session ends when its key is revoked
// or expires (within Config.AuthCacheTTL in another process), and any
// aetherd of a cluster serves it without shared session state.
//
// Requests authenticated by the cookie that change something (any method
// but GET and HEAD, and WebSocket upgrades such as the terminal) must also
// carry the session's CSRF token, which only a page that read
// GET /api/v1/session (same origin) knows: in the X-CSRF-Token header, or,
// for WebSockets, whose browser API sets no headers, the csrf_token query
// parameter. http.CrossOriginProtection refuses cross-site mutating
// requests before that.
const (
	// SessionCookie is the name of the dashboard's session cookie over
	// plain HTTP.
	SessionCookie = "aether_session"
	// SecureSessionCookie is its name when it is Secure (over TLS, or with
	// Config.SecureCookies): browsers let only the API's own host set a
	// __Host- cookie, so a page on a sibling host (a preview host under the
	// same registrable domain) cannot toss one in with Domain=… to fix the
	// browser's session to a key of its own.
	SecureSessionCookie = "__Host-" + SessionCookie
	// CSRFHeader carries a cookie session's CSRF token.
	CSRFHeader = "X-CSRF-Token"
	// csrfQuery carries it on WebSocket upgrades.
	csrfQuery = "csrf_token"
)

// csrfToken is the CSRF token of a session of key: an HMAC of a fixed
// label under the key, so it needs no storage, differs per key and reveals
// nothing of the key.
func csrfToken(key string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte("aetherium dashboard csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// credentials returns the key a request presents: its bearer token, or
// else its session cookie named cookie (fromCookie). Two cookies of that
// name are refused: one was set by another host for a parent domain or a
// longer path (cookie tossing), and a browser sends the longer path first.
func credentials(r *http.Request, cookie string) (key string, fromCookie bool, err error) {
	if h := r.Header.Get("Authorization"); h != "" {
		key, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return "", false, auth.ErrUnauthenticated
		}
		return key, false, nil
	}
	var found []*http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == cookie {
			found = append(found, c)
		}
	}
	switch {
	case len(found) > 1:
		return "", false, errTwoSessions
	case len(found) == 0 || found[0].Value == "":
		return "", false, auth.ErrUnauthenticated
	}
	return found[0].Value, true, nil
}

// errTwoSessions answers a request with more than one session cookie.
var errTwoSessions = &httpError{http.StatusUnauthorized, "unauthenticated",
	"more than one " + SessionCookie + " cookie: another site under this domain set one; clear this site's cookies and log in again"}

// sessionCookie is the session cookie's name for r.
func (s *Server) sessionCookie(r *http.Request) string {
	if r.TLS != nil || s.cfg.SecureCookies {
		return SecureSessionCookie
	}
	return SessionCookie
}

// isSessionCookie says a cookie is aetherd's session cookie, by either name.
func isSessionCookie(name string) bool {
	return name == SessionCookie || name == SecureSessionCookie
}

// checkCSRF refuses a cookie-authenticated request that changes something
// without its session's CSRF token.
func checkCSRF(r *http.Request, key string) error {
	safe := (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.Header.Get("Upgrade") == ""
	if safe {
		return nil
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" {
		got = r.URL.Query().Get(csrfQuery)
	}
	if !hmac.Equal([]byte(got), []byte(csrfToken(key))) {
		return forbidden("missing or wrong CSRF token (header %s) for a session-cookie request", CSRFHeader)
	}
	return nil
}

type loginRequest struct {
	Key string `json:"key"`
}

// handleSessionCreate logs in: it checks the key in the body and sets the
// session cookie. It is an open route (it is how a browser gets a
// credential); a bad key gets the same 401 as anywhere else.
func (s *Server) handleSessionCreate(w http.ResponseWriter, r *http.Request) {
	if !isJSON(r.Header.Get("Content-Type")) {
		s.writeError(w, r, unsupportedMedia("Content-Type must be application/json"))
		return
	}
	var in loginRequest
	if err := decodeJSON(w, r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	in.Key = strings.TrimSpace(in.Key)
	if in.Key == "" {
		s.writeError(w, r, errdefs.InvalidArgument("key: required"))
		return
	}
	p, err := s.authKey(r, in.Key)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: s.sessionCookie(r), Value: in.Key, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || s.cfg.SecureCookies})
	s.audit.record(p, r, http.StatusOK)
	writeJSON(w, http.StatusOK, sessionOut(p, in.Key))
}

// handleSessionGet describes the caller's session: its key, project, role
// and CSRF token. The dashboard calls it on load to know whether it is
// logged in.
func (s *Server) handleSessionGet(w http.ResponseWriter, r *http.Request) {
	key, _, _ := credentials(r, s.sessionCookie(r)) // guard authenticated it
	writeJSON(w, http.StatusOK, sessionOut(auth.FromContext(r.Context()), key))
}

// handleSessionDelete logs out: it clears the session cookie. The key
// stays valid (revoke it with DELETE /api/v1/keys/{id}).
func (s *Server) handleSessionDelete(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: s.sessionCookie(r), Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || s.cfg.SecureCookies})
	w.WriteHeader(http.StatusNoContent)
}

func sessionOut(p *auth.Principal, key string) apiv1.Session {
	return apiv1.Session{KeyPrefix: p.KeyPrefix, ProjectID: p.ProjectID, Role: p.Role, CSRFToken: csrfToken(key)}
}

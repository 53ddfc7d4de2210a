package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"

	"github.com/coder/websocket"

	"github.com/aetherium/aetherium/internal/cluster"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/splice"
	"github.com/aetherium/aetherium/internal/store"
)

// portMethods are the methods the port proxy routes (GET also serves HEAD).
var portMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// maxTCPMessage bounds one WebSocket message of the TCP route from the client.
const maxTCPMessage = 1 << 20

// portParam reads the {port} path value.
func portParam(r *http.Request) (int, error) {
	v := r.PathValue("port")
	p, err := strconv.Atoi(v)
	if err != nil || p < 1 || p > 65535 {
		return 0, errdefs.InvalidArgument("port: %q is not between 1 and 65535", v)
	}
	return p, nil
}

// vmPort serves /vms/{id}/ports/{port}/{path...}: a reverse proxy of HTTP,
// and of upgrades such as WebSocket, to 127.0.0.1:port inside the sandbox,
// over an agent stream per request (the sandbox needs no network).
func (s *Server) vmPort(sb cluster.Sandboxes) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		vm, ok := s.lookupVM(w, r)
		if !ok {
			return
		}
		port, err := portParam(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if subresourceOfThisOrigin(r) {
			s.writeError(w, r, forbidden("a page of this origin may not load a script, style or worker from a sandbox's port"))
			return
		}
		liftDeadlines(w) // downloads and WebSockets last as long as they last
		prefix := portPrefix(r)
		s.portProxy(sb, vm, port, portRoute{path: portPath, strip: stripCredentials,
			confine: func(h http.Header) { confineResponse(h, prefix) }}).ServeHTTP(w, r)
	}
}

// subresourceOfThisOrigin reports a request for a script, style sheet or
// worker made by a page of aetherd's own origin (the dashboard): a
// sandbox's port serves content of that origin, which must never run
// there. The sandbox's own pages live in an opaque origin (the proxy's
// CSP), so their requests are cross-site and pass.
func subresourceOfThisOrigin(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Site") != "same-origin" {
		return false
	}
	switch r.Header.Get("Sec-Fetch-Dest") {
	case "script", "style", "worker", "sharedworker", "serviceworker", "audioworklet", "paintworklet", "xslt":
		return true
	}
	return false
}

// portPrefix is the request's path up to and including its port segment
// ("/api/v1/vms/dev/ports/8000/"), as the client sent it.
func portPrefix(r *http.Request) string {
	parts := strings.SplitN(r.URL.EscapedPath(), "/", 8)
	return strings.Join(parts[:min(len(parts), 7)], "/") + "/"
}

// portRoute is what differs between the two ways to a sandbox's port: the
// path route (/vms/{id}/ports/{port}/…, on aetherd's origin) and preview
// hosts (an origin of their own).
type portRoute struct {
	// path is the path to request inside the sandbox, and its escaped form
	// when that differs.
	path func(*http.Request) (path, raw string)
	// strip removes aetherd's credentials from the outgoing request.
	strip func(*http.Request)
	// confine edits the sandbox's response headers.
	confine func(http.Header)
}

func (s *Server) portProxy(sb cluster.Sandboxes, vm *store.VM, port int, route portRoute) *httputil.ReverseProxy {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) { return sb.Dial(ctx, vm, port) }
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetXForwarded()
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "localhost:"+strconv.Itoa(port)
			pr.Out.URL.Path, pr.Out.URL.RawPath = route.path(pr.In)
			pr.Out.Host = pr.Out.URL.Host
			route.strip(pr.Out)
		},
		// One agent stream per request: nothing idles on the agent's
		// stream budget, and a closed request frees its stream at once.
		Transport:     &http.Transport{DialContext: dial, DisableKeepAlives: true, DisableCompression: true},
		FlushInterval: -1, // server-sent events and long polls stream as they come
		ModifyResponse: func(resp *http.Response) error {
			route.confine(resp.Header)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if !errors.Is(err, errdefs.ErrUnavailable) && !errors.Is(err, errdefs.ErrFailedPrecondition) &&
				!errors.Is(err, errdefs.ErrNotImplemented) && !errors.Is(err, context.Canceled) {
				err = errdefs.Unavailable("sandbox %s, port %d: %v", vm.Name, port, err)
			}
			s.writeError(w, r, err)
		},
	}
}

// portPath is the request's path below /vms/{id}/ports/{port}, escaped as
// the client sent it.
func portPath(r *http.Request) (path, raw string) {
	parts := strings.SplitN(r.URL.EscapedPath(), "/", 8) // "", api|internal, v1, vms, id, ports, port, rest
	rest := ""
	if len(parts) == 8 {
		rest = parts[7]
	}
	raw = "/" + rest
	path, err := url.PathUnescape(raw)
	if err != nil {
		return "/" + r.PathValue("path"), ""
	}
	if path == raw {
		raw = ""
	}
	return path, raw
}

// stripCredentials removes what authenticated the request to aetherd: the
// sandbox must never see an API key or the internal token.
func stripCredentials(r *http.Request) {
	r.Header.Del("Authorization")
	r.Header.Del(ProjectHeader)
	r.Header.Del("X-CSRF-Token")
	cookies := r.Cookies()
	r.Header.Del("Cookie")
	for _, c := range cookies {
		if !isSessionCookie(c.Name) {
			r.AddCookie(c)
		}
	}
	if q := r.URL.Query(); q.Has(csrfQuery) {
		q.Del(csrfQuery)
		r.URL.RawQuery = q.Encode()
	}
}

// confineResponse keeps a sandbox's response from acting on aetherd's
// origin, which it shares: its pages are sandboxed into an opaque origin
// (so their scripts cannot use the dashboard's session), never sniffed into
// another type, its cookies are confined to the port's path (the session
// cookie and any line that does not parse are dropped, so it can neither
// clobber the session nor flood the API's requests with cookies), and
// headers that act on the whole origin (Clear-Site-Data,
// Service-Worker-Allowed, CORS grants) are removed.
func confineResponse(h http.Header, prefix string) {
	h.Set("Content-Security-Policy", "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads")
	h.Set("X-Content-Type-Options", "nosniff")
	for _, k := range []string{"Clear-Site-Data", "Service-Worker-Allowed", "Access-Control-Allow-Origin",
		"Access-Control-Allow-Credentials", "Access-Control-Allow-Headers", "Access-Control-Allow-Methods",
		"Access-Control-Expose-Headers", "Access-Control-Max-Age"} {
		h.Del(k)
	}
	var kept []string
	for _, v := range h.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(v)
		if err != nil || isSessionCookie(c.Name) || strings.HasPrefix(c.Name, "__Host-") || c.Valid() != nil {
			continue
		}
		c.Path, c.Domain = prefix, ""
		kept = append(kept, c.String())
	}
	h.Del("Set-Cookie")
	for _, v := range kept {
		h.Add("Set-Cookie", v)
	}
}

// vmTCP serves GET /vms/{id}/tcp/{port}: a WebSocket whose binary messages
// carry a raw TCP connection to 127.0.0.1:port inside the sandbox (what
// `aether port-forward` uses). The connection is made before the upgrade,
// so nothing listening is an ordinary 503.
func (s *Server) vmTCP(sb cluster.Sandboxes) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		vm, ok := s.lookupVM(w, r)
		if !ok {
			return
		}
		port, err := portParam(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			s.writeError(w, r, errdefs.InvalidArgument("this route is a WebSocket: send Upgrade: websocket"))
			return
		}
		liftDeadlines(w)
		conn, err := sb.Dial(r.Context(), vm, port)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		defer conn.Close()
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(maxTCPMessage)
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stop := context.AfterFunc(s.streams, cancel)
		defer stop()
		splice.Conns(websocket.NetConn(ctx, c, websocket.MessageBinary), conn)
	}
}

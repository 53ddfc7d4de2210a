// Package dashboard is the web dashboard's static files (HTML, JavaScript,
// CSS and the vendored xterm.js), embedded in aetherd. The page is a client
// of the REST API like any other: it logs in through POST /api/v1/session
// and reads and changes everything through /api/v1 with its session cookie.
// Package api routes GET / and GET /ui/{file...} here; nothing else imports it.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// files is the static tree, rooted so /ui/app.js is app.js.
var files, _ = fs.Sub(static, "static")

var assets = http.StripPrefix("/ui/", http.FileServerFS(files))

// contentSecurityPolicy allows only the dashboard's own scripts and
// connections (same-origin fetch, EventSource and WebSocket); xterm.js
// styles its elements inline.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

func secure(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

// Index serves the dashboard's page (GET /). It needs no key: the page asks
// GET /api/v1/session whether it is logged in and shows the login form if not.
func Index(w http.ResponseWriter, r *http.Request) {
	secure(w)
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeFileFS(w, r, files, "index.html")
}

// Asset serves the dashboard's scripts, styles and vendored libraries
// (GET /ui/{file...}). They hold no data, so they need no key.
// Directories are not listed.
func Asset(w http.ResponseWriter, r *http.Request) {
	if f := r.PathValue("file"); f == "" || strings.HasSuffix(f, "/") {
		http.NotFound(w, r)
		return
	}
	secure(w)
	w.Header().Set("Cache-Control", "no-cache")
	assets.ServeHTTP(w, r)
}

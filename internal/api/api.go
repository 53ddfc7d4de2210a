// Package api is Aetherium's REST API (v1): HTTP handlers, the route table,
// the OpenAPI document and the mapping of error classes to HTTP statuses.
// It writes the wire types of package apiv1, creates work only through
// task.Submit, and reaches sandboxes through a cluster.Sandboxes; it never
// imports the worker or a sandbox runtime. cmd/aetherd mounts it; nothing
// else imports it.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aetherium/aetherium/internal/auth"
	"github.com/aetherium/aetherium/internal/cluster"
	"github.com/aetherium/aetherium/internal/egress"
	"github.com/aetherium/aetherium/internal/events"
	"github.com/aetherium/aetherium/internal/integrations"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
	"github.com/aetherium/aetherium/internal/tools"
)

// HealthCheck reports one component's health; nil means healthy.
type HealthCheck func(ctx context.Context) error

// RuntimeChoice says which sandbox runtime this process uses, why, and why
// each other one was skipped. GET /health reports it.
type RuntimeChoice struct {
	// Name is docker, qemu or firecracker.
	Name string `json:"name"`
	// Why says what decided it, in one line.
	Why string `json:"why,omitempty"`
	// Skipped maps each runtime not chosen to why (runtime auto only).
	Skipped map[string]string `json:"skipped,omitempty"`
}

// Config configures a Server.
type Config struct {
	// DefaultImage is the image used when a create request names none. Required.
	DefaultImage string
	// DefaultEgress is sandboxes' egress policy when neither the request
	// nor its template gives one; the zero Policy leaves it to the worker.
	DefaultEgress egress.Policy
	// RuntimeName is recorded on each sandbox ("docker"). Required.
	RuntimeName string
	// Place picks the worker for a new sandbox of vcpus and memoryMB and
	// returns its ID; only, when set, is the one acceptable worker. Errors
	// (ErrUnavailable when no worker has room) fail the create. Required
	// when Public.
	Place func(ctx context.Context, only string, vcpus, memoryMB int) (string, error)
	// Tools validates tool requests before anything is created; nil means the
	// built-in recipes.
	Tools *tools.Registry
	// DefaultTools are installed in every new sandbox besides the requested ones.
	DefaultTools []string
	// MaxVCPUs bounds vcpus per sandbox; 0 means 16.
	MaxVCPUs int
	// MaxMemoryMB bounds memory_mb per sandbox; 0 means 65536.
	MaxMemoryMB int
	// Public serves the /api/v1 routes. False for a worker-only process,
	// which serves /health, /metrics and the internal routes.
	Public bool
	// Local, with InternalToken, serves the internal routes (/internal/v1)
	// through which other aetherd processes reach this worker's sandboxes:
	// the worker of this process; nil when it runs none.
	Local cluster.Sandboxes
	// InternalToken is the shared secret internal calls must present as
	// "Authorization: Bearer <token>". Empty disables the internal routes.
	InternalToken string
	// Events is the bus behind GET /api/v1/events and task long-polls. Required.
	Events events.Bus
	// Logs serves the log routes: query and live tail. Required when Public.
	Logs LogSource
	// Webhooks receives POST /api/v1/webhooks/{name}; nil answers every
	// webhook 401 (no integration enabled).
	Webhooks *integrations.Registry
	// Health lists the checks behind GET /health by component name.
	Health map[string]HealthCheck
	// Runtime reports the runtime choice in GET /health; nil means none
	// (an api-only process).
	Runtime func() RuntimeChoice
	// Registry receives the API's metrics and is served at /metrics; nil
	// means a new registry.
	Registry *prometheus.Registry
	// Logger receives logs; nil means slog.Default().
	Logger *slog.Logger

	// MetricsToken, when set, is a bearer token that may read /metrics
	// besides admin keys; empty means admin keys only.
	MetricsToken string
	// SecureCookies marks the dashboard's session cookie Secure on every
	// login, for aetherd behind a TLS-terminating proxy (without it, only a
	// login that came over TLS to aetherd itself gets Secure).
	SecureCookies bool
	// AuthCacheTTL bounds how long a key is trusted without reading it
	// again (a revocation made by another process), and how often a
	// long-lived request (a stream, a terminal) checks that its key or
	// preview token still holds; 0 means 5s.
	AuthCacheTTL time.Duration
	// RateLimits are the per-key token buckets of each route class; zero
	// rates mean no limit.
	RateLimits RateLimits
	// AllowedHosts are the host names (besides IP literals, which are
	// always allowed, and "localhost") a request's Host may carry; "*"
	// allows any. Names not listed are refused (DNS rebinding).
	AllowedHosts []string
	// PreviewDomain, when set, serves {port}-{sandbox}.{PreviewDomain} as
	// preview hosts (preview.go); empty means off. Lower case, no port.
	PreviewDomain string
	// MaxStreams bounds the event streams and task long-polls one key has
	// open at once; 0 means 16, -1 no limit.
	MaxStreams int
}

func (c *Config) withDefaults() {
	if c.MaxVCPUs == 0 {
		c.MaxVCPUs = 16
	}
	if c.MaxMemoryMB == 0 {
		c.MaxMemoryMB = 65536
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Tools == nil {
		c.Tools, _ = tools.Load(tools.Config{})
	}
	if c.AuthCacheTTL == 0 {
		c.AuthCacheTTL = 5 * time.Second
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = 16
	}
	c.PreviewDomain = strings.ToLower(strings.Trim(c.PreviewDomain, "."))
}

// Server serves the API. It is safe for concurrent use.
type Server struct {
	cfg       Config
	log       *slog.Logger
	store     store.Store
	queue     task.Enqueuer
	sandboxes cluster.Sandboxes
	metrics   *metrics
	mux       *http.ServeMux
	auth      *auth.Authenticator
	cop       *http.CrossOriginProtection
	hosts     map[string]bool
	limits    *limiters
	// previewFails and keyFails limit failed preview-token and API-key
	// lookups by client address (addrfails.go).
	previewFails, keyFails *addrFails
	audit                  *auditor
	// streams counts each key's open event streams and long-polls; execs
	// each project's running interactive execs (Quota.Execs).
	streamSlots, execSlots slots
	quotas                 quotaCache
	// streams ends open event streams at shutdown; they would otherwise
	// hold http.Server.Shutdown until its timeout.
	streams     context.Context
	stopStreams context.CancelFunc
}

// New returns a Server over the given store, queue and sandboxes (in a
// cluster, the cluster.Router, which reaches every sandbox's owner).
func New(cfg Config, st store.Store, q task.Enqueuer, sb cluster.Sandboxes) (*Server, error) {
	cfg.withDefaults()
	if cfg.DefaultImage == "" || cfg.RuntimeName == "" {
		return nil, errors.New("api: DefaultImage and RuntimeName are required")
	}
	if cfg.Public && (cfg.Place == nil || cfg.Events == nil || cfg.Logs.Store == nil || cfg.Logs.Hub == nil) {
		return nil, errors.New("api: Place, Events and Logs are required with Public")
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "api"), store: st, queue: q, sandboxes: sb,
		metrics: newMetrics(cfg.Registry), cop: http.NewCrossOriginProtection(), limits: newLimiters(cfg.RateLimits), previewFails: newAddrFails(), keyFails: newAddrFails(),
		hosts: map[string]bool{"localhost": true}}
	s.quotas.st = st
	for _, h := range cfg.AllowedHosts {
		s.hosts[strings.ToLower(strings.TrimSuffix(h, "."))] = true
	}
	if st != nil {
		s.auth = auth.NewAuthenticator(st, auth.AuthenticatorConfig{CacheTTL: cfg.AuthCacheTTL})
		s.audit = newAuditor(st, s.log)
	}
	s.streams, s.stopStreams = context.WithCancel(context.Background())
	if s.audit != nil {
		go s.audit.run(s.streams.Done())
	}
	cfg.Registry.MustRegister(newPoolCollector(s))
	s.mux = http.NewServeMux()
	for _, rt := range s.routes() {
		s.mux.HandleFunc(rt.pattern, s.guard(rt))
	}
	return s, nil
}

// CloseStreams ends every open event stream and, after writing what is
// queued, the audit writer; register it with http.Server.RegisterOnShutdown.
// Request handlers that finish on their own (exec, files, long-polls) are
// left to drain.
func (s *Server) CloseStreams() { s.stopStreams() }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	var route string
	if label, ok := s.previewLabel(r); ok && s.cfg.Public {
		s.servePreview(rec, r, label) // a preview host serves nothing else
		route = "preview"
	} else {
		s.mux.ServeHTTP(rec, r)
		route = r.Pattern
	}
	if route == "" {
		route = "unmatched"
	}
	s.metrics.requests.WithLabelValues(route, statusClass(rec.status)).Inc()
	s.metrics.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

// statusRecorder remembers the status code for metrics. It forwards Flush and
// full-duplex control through Unwrap.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func statusClass(code int) string {
	return string(rune('0'+code/100)) + "xx"
}

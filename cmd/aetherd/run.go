package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"
	"golang.org/x/sync/errgroup"

	"github.com/aetherium/aetherium/internal/api"
	"github.com/aetherium/aetherium/internal/cluster"
	"github.com/aetherium/aetherium/internal/config"
	"github.com/aetherium/aetherium/internal/egress"
	"github.com/aetherium/aetherium/internal/events"
	"github.com/aetherium/aetherium/internal/events/redisbus"
	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/integrations"
	"github.com/aetherium/aetherium/internal/logs"
	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/queue/asynqqueue"
	"github.com/aetherium/aetherium/internal/queue/sqlitequeue"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/store/postgres"
	"github.com/aetherium/aetherium/internal/store/sqlite"
	"github.com/aetherium/aetherium/internal/task"
	"github.com/aetherium/aetherium/internal/tools"
	"github.com/aetherium/aetherium/internal/worker"
)

// closer is a named shutdown step; run closes them in reverse start order.
type closer struct {
	name string
	fn   func(ctx context.Context) error
}

func run(ctx context.Context, args []string) (err error) {
	cfg, rest, err := config.Parse("aetherd", args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q (flags only; see aetherd -h)", rest[0])
	}
	base := newLogger(cfg.LogLevel, cfg.LogFormat) // stderr only; the log pipeline reports its own errors here
	log := base
	defaultEgress := mustEgress(cfg.Network.Egress)

	var closers []closer
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		for i := len(closers) - 1; i >= 0; i-- {
			if cerr := closers[i].fn(sctx); cerr != nil {
				log.Warn("shutdown step failed", slog.String("step", closers[i].name), slog.Any("err", cerr))
			}
		}
	}()

	// The data dir holds the admin key, the database and sandbox state: its
	// owner's only.
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	closers = append(closers, closer{"data dir lock", func(context.Context) error { return unlock() }})

	rawStore, err := openStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	closers = append(closers, closer{"store", func(context.Context) error { return rawStore.Close() }})
	if err := ownerOnly(cfg.DataDir, "aether.db*"); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	// Logs: from here on, aetherd's own slog output is a log record too.
	reg := prometheus.NewRegistry()
	logPipe, err := openLogs(ctx, cfg, reg, base)
	if err != nil {
		return fmt.Errorf("open log store: %w", err)
	}
	if err := ownerOnly(cfg.DataDir, "logs.db*"); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	logPipe.Start(ctx)
	closers = append(closers, closer{"logs", func(ctx context.Context) error {
		return errors.Join(logPipe.Stop(ctx), logPipe.Store().Close())
	}})
	log = slog.New(logs.NewSlogHandler(base.Handler(), logPipe))
	for _, n := range cfg.Notices {
		log.Warn("config: "+n, slog.String("source", "seed config keys"))
	}
	if cfg.Role != "worker" {
		if err := bootstrapKeys(ctx, cfg, rawStore, log); err != nil {
			return err
		}
	}
	var bus events.Bus = events.NewLocal()
	if cfg.RedisAddr != "" {
		if bus, err = redisbus.New(redisbus.Config{Addr: cfg.RedisAddr, Password: cfg.RedisPassword, TLS: redisTLS(cfg)}); err != nil {
			return fmt.Errorf("event bus: %w", err)
		}
	}
	closers = append(closers, closer{"event bus", func(context.Context) error { return bus.Close() }})
	// Every committed state change is published, and recorded as a log record.
	st := events.NewStore(rawStore, logBus{Bus: bus, logs: logPipe}, log)

	recipes, err := tools.Load(tools.Config{Recipes: cfg.Tools.Recipes, Provider: cfg.Tools.Provider,
		Providers: cfg.Tools.Providers, MiseVersion: cfg.Tools.Mise.Version, MiseSettings: cfg.Tools.Mise.Settings})
	if err != nil {
		return fmt.Errorf("tools: %w", err)
	}
	if _, err := recipes.Plan(cfg.Tools.Defaults, nil); err != nil {
		return fmt.Errorf("tools.defaults: %w", err)
	}
	workerID := cfg.WorkerID
	if workerID == "" {
		workerID, _ = os.Hostname()
	}
	// An api-only process enqueues but consumes nothing, so it has no queue identity.
	queueID := workerID
	if cfg.Role == "api" {
		queueID = ""
	}
	q, err := openQueue(ctx, cfg, queueID, log)
	if err != nil {
		return fmt.Errorf("open queue: %w", err)
	}
	if err := ownerOnly(cfg.DataDir, "queue.db*"); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	hooks, err := openIntegrations(ctx, &cfg.Integrations, st, q, log)
	if err != nil {
		return fmt.Errorf("open integrations: %w", err)
	}
	var w *worker.Worker
	// Draining the queue needs the worker's agent connections, so they close
	// after it, in the same step.
	closers = append(closers, closer{"queue", func(ctx context.Context) error {
		err := q.Stop(ctx)
		if w != nil {
			w.Close()
		}
		return err
	}})

	health := map[string]api.HealthCheck{"store": st.Ping, "queue": q.Ping}
	var local cluster.Sandboxes
	runtimeName := cfg.Runtime
	var runtimeChoice func() api.RuntimeChoice
	if cfg.Role != "api" {
		images, err := image.NewBuilder(cfg.Sandbox.CACertificates)
		if err != nil {
			return fmt.Errorf("image builder: %w", err)
		}
		rts, err := newRuntimes(cfg, workerID, images, st, log)
		if err != nil {
			return fmt.Errorf("open runtime: %w", err)
		}
		closers = append(closers, closer{"runtime probes", rts.close})
		rt, err := rts.open(ctx)
		if err != nil {
			return fmt.Errorf("open runtime: %w", err)
		}
		runtimeName, runtimeChoice = rts.Choice().Name, rts.Choice
		health["runtime"] = rt.Health
		advertise := cfg.Advertise
		if advertise == "" {
			advertise = cfg.Listen
		}
		vcpus, memMB := budget(cfg.Overcommit)
		w, err = worker.New(worker.Config{ID: workerID, Address: advertise, RuntimeName: runtimeName, DefaultEgress: defaultEgress,
			Capacity: cfg.Capacity, VCPUs: vcpus, MemoryMB: memMB, DeadAfter: cfg.WorkerDeadAfter, ReconcileInterval: cfg.ReconcileInterval,
			RequeueAfter: cfg.RequeueAfter, Tools: recipes, HeartbeatInterval: min(10*time.Second, cfg.WorkerDeadAfter/3), MaxOutputBytes: cfg.Executions.MaxOutputBytes,
			Retention: cfg.Executions.Retention, Logger: log, Logs: execLogs(cfg, logPipe), Integrations: reporter(hooks)}, st, q, rt, images)
		if err != nil {
			return err
		}
		local = w
	}
	router := cluster.NewRouter(cluster.RouterConfig{LocalID: workerID, Local: local, Token: cfg.InternalToken,
		DeadAfter: cfg.WorkerDeadAfter}, st)

	g, gctx := errgroup.WithContext(ctx)
	if w != nil {
		if err := w.Register(ctx); err != nil {
			return err
		}
		if err := q.Start(ctx, w.Handle); err != nil {
			return fmt.Errorf("start queue: %w", err)
		}
		g.Go(func() error { return w.Run(gctx) })
	}
	{
		// Every role serves HTTP: the API (all, api) and/or the internal
		// endpoint other processes use to reach this worker's sandboxes.
		srv, err := newHTTPServer(cfg, runtimeName, runtimeChoice, st, q, bus, recipes, router, local, health, log, reg, logPipe, hooks)
		if err != nil {
			return err
		}
		l, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		// Connections beyond max_conns wait in the kernel's backlog.
		l = netutil.LimitListener(l, cfg.API.MaxConns)
		log.Info("aetherd serving", slog.String("listen", l.Addr().String()), slog.String("role", cfg.Role),
			slog.String("worker_id", workerID), slog.String("data_dir", cfg.DataDir))
		g.Go(func() error {
			if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			// Stop taking requests first; in-flight ones finish within the
			// shutdown timeout. Queue handlers drain in the queue closer.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), cfg.ShutdownTimeout)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	err = g.Wait()
	log.Info("aetherd stopping")
	return err
}

// execLogs is where exec output lines go: the log pipeline, or nowhere when
// logging.exec_output is off.
func execLogs(cfg *config.Config, p *logs.Pipeline) worker.LineLogger {
	if !cfg.Logging.ExecOutput {
		return nil
	}
	return p
}

func newHTTPServer(cfg *config.Config, runtimeName string, runtimeChoice func() api.RuntimeChoice, st store.Store, q queue.Queue, bus events.Bus, recipes *tools.Registry, router *cluster.Router, local cluster.Sandboxes, health map[string]api.HealthCheck, log *slog.Logger, reg *prometheus.Registry, logPipe *logs.Pipeline, hooks *integrations.Registry) (*http.Server, error) {
	h, err := api.New(api.Config{
		DefaultImage: cfg.Sandbox.DefaultImage, DefaultEgress: mustEgress(cfg.Network.Egress), RuntimeName: runtimeName, MaxVCPUs: cfg.Sandbox.MaxVCPUs,
		MaxMemoryMB: cfg.Sandbox.MaxMemoryMB, Health: health, Runtime: runtimeChoice, Registry: reg, Logger: log,
		Tools: recipes, DefaultTools: cfg.Tools.Defaults,
		Public: cfg.Role != "worker", Local: local, InternalToken: cfg.InternalToken, Events: bus,
		MetricsToken: cfg.API.MetricsToken, SecureCookies: cfg.API.SecureCookies, AuthCacheTTL: cfg.API.KeyCacheTTL, MaxStreams: cfg.API.MaxStreams,
		AllowedHosts: allowedHosts(cfg), PreviewDomain: cfg.API.PreviewDomain,
		RateLimits: api.RateLimits{Default: api.Rate(cfg.API.RateLimits.Default), Create: api.Rate(cfg.API.RateLimits.Create),
			Exec: api.Rate(cfg.API.RateLimits.Exec), Preview: api.Rate(cfg.API.RateLimits.Preview)},
		Logs: api.LogSource{Store: logPipe.Store(), Hub: logPipe.Hub()}, Webhooks: hooks,
		Place: func(ctx context.Context, only string, vcpus, memoryMB int) (string, error) {
			w, err := cluster.Place(ctx, st, cfg.WorkerDeadAfter, only, vcpus, memoryMB)
			if err != nil {
				return "", err
			}
			return w.ID, nil
		},
	}, st, q, router)
	if err != nil {
		return nil, err
	}
	// Exec, file transfers and event streams lift the read and write
	// deadlines for themselves (http.ResponseController); every other
	// request must be read and answered within them.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: cfg.API.ReadTimeout,
		WriteTimeout: cfg.API.WriteTimeout, IdleTimeout: cfg.API.IdleTimeout}
	srv.RegisterOnShutdown(h.CloseStreams)
	return srv, nil
}

// allowedHosts are the Host names the API answers besides IP literals and
// localhost: api.allowed_hosts, the listen and advertise hosts, and this
// machine's hostname when listening on every interface.
func allowedHosts(cfg *config.Config) []string {
	hosts := slices.Clone(cfg.API.AllowedHosts)
	for _, addr := range []string{cfg.Listen, cfg.Advertise} {
		if h, _, err := net.SplitHostPort(addr); err == nil && h != "" {
			hosts = append(hosts, h)
		}
	}
	if h, _, _ := net.SplitHostPort(cfg.Listen); h == "" || net.ParseIP(h).IsUnspecified() {
		if name, err := os.Hostname(); err == nil {
			hosts = append(hosts, name)
		}
	}
	return hosts
}

func openStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	if cfg.DatabaseURL != "" {
		return postgres.Open(ctx, cfg.DatabaseURL)
	}
	return sqlite.Open(ctx, filepath.Join(cfg.DataDir, "aether.db"), strings.ToUpper(cfg.Store.Synchronous))
}

// redisTLS is the TLS configuration for Redis: system roots, the address's
// host as the server name; nil without redis_tls.
func redisTLS(cfg *config.Config) *tls.Config {
	if !cfg.RedisTLS {
		return nil
	}
	host, _, _ := net.SplitHostPort(cfg.RedisAddr)
	return &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
}

func openQueue(ctx context.Context, cfg *config.Config, workerID string, log *slog.Logger) (queue.Queue, error) {
	if cfg.RedisAddr != "" {
		return asynqqueue.New(asynqqueue.Config{Addr: cfg.RedisAddr, Password: cfg.RedisPassword, TLS: redisTLS(cfg), WorkerID: workerID, Concurrency: cfg.Queue.Concurrency,
			Weights: cfg.Queue.Weights, PollInterval: cfg.Queue.RedisPollInterval, ShutdownTimeout: cfg.ShutdownTimeout,
			Logger: quieter(log)})
	}
	return sqlitequeue.New(ctx, sqlitequeue.Config{
		Path: filepath.Join(cfg.DataDir, "queue.db"), WorkerID: workerID, Concurrency: cfg.Queue.Concurrency, Weights: cfg.Queue.Weights,
		PollInterval: cfg.Queue.PollInterval, MaxTimeout: task.MaxTimeout(), Logger: quieter(log),
	})
}

// agentPath finds aether-agent: the configured path, else beside aetherd.
func agentPath(cfg *config.Config) (string, error) {
	if cfg.AgentPath != "" {
		return cfg.AgentPath, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(self), "aether-agent")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("agent_path: aether-agent not found beside aetherd (%s); build it with `make build` or set agent_path", p)
	}
	return p, nil
}

// ownerOnly makes the data dir's files matching pattern readable by their
// owner only (SQLite creates them 0644; its -wal and -shm files copy the
// main file's mode).
func ownerOnly(dir, pattern string) error {
	files, _ := filepath.Glob(filepath.Join(dir, pattern))
	for _, f := range files {
		if err := os.Chmod(f, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// lockDataDir takes an exclusive lock so two daemons never share one data
// directory: the embedded queue's crash recovery relies on it.
func lockDataDir(dir string) (func() error, error) {
	f, err := os.OpenFile(filepath.Join(dir, "aetherd.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data_dir %s is in use by another aetherd", dir)
	}
	return f.Close, nil
}

func newLogger(level, format string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// quieter passes only warnings and errors: River logs every retry at info.
func quieter(log *slog.Logger) *slog.Logger {
	return slog.New(levelFloor{log.Handler(), slog.LevelWarn})
}

type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (h levelFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h levelFloor) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelFloor{h.Handler.WithAttrs(attrs), h.min}
}

func (h levelFloor) WithGroup(name string) slog.Handler {
	return levelFloor{h.Handler.WithGroup(name), h.min}
}

// mustEgress parses network.egress, which config validation has checked.
func mustEgress(s string) egress.Policy {
	p, err := egress.Parse(s)
	if err != nil {
		panic(err)
	}
	return p
}

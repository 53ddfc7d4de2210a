package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aetherium/aetherium/internal/config"
	"github.com/aetherium/aetherium/internal/events"
	"github.com/aetherium/aetherium/internal/logs"
	"github.com/aetherium/aetherium/internal/logs/loki"
	"github.com/aetherium/aetherium/internal/logs/sqllog"
)

// openLogs opens the local log store (a SQLite file of its own in the data
// dir, or a table in the PostgreSQL database) and the configured providers,
// and returns the pipeline, not yet started. log must not feed the pipeline.
func openLogs(ctx context.Context, cfg *config.Config, reg prometheus.Registerer, log *slog.Logger) (*logs.Pipeline, error) {
	var st logs.Store
	var err error
	if cfg.DatabaseURL != "" {
		st, err = sqllog.OpenPostgres(ctx, cfg.DatabaseURL)
	} else {
		st, err = sqllog.OpenSQLite(ctx, filepath.Join(cfg.DataDir, "logs.db"))
	}
	if err != nil {
		return nil, err
	}
	m := logs.NewMetrics(reg)
	var providers []logs.Provider
	fail := func(err error) (*logs.Pipeline, error) {
		for _, p := range providers {
			p.Close(context.WithoutCancel(ctx))
		}
		st.Close()
		return nil, err
	}
	lc := cfg.Logging
	for _, name := range lc.Providers {
		var p logs.Provider
		switch name {
		case "stdout":
			p, err = logs.NewStdout(os.Stdout, lc.Stdout.Format, m)
		case "loki":
			p, err = loki.New(loki.Config{URL: lc.Loki.URL, Labels: lc.Loki.Labels, IDLabels: lc.Loki.IDLabels,
				IDsInLine: lc.Loki.IDsInLine, TenantID: lc.Loki.TenantID, Username: lc.Loki.Username, Password: lc.Loki.Password,
				BatchSize: lc.Loki.BatchSize, BatchWait: lc.Loki.BatchWait, Buffer: lc.Loki.Buffer, Metrics: m, Logger: log})
		default:
			err = fmt.Errorf("unknown provider %q", name) // config.Validate refuses it first
		}
		if err != nil {
			return fail(fmt.Errorf("logging.%s: %w", name, err))
		}
		providers = append(providers, p)
	}
	p, err := logs.New(logs.Config{Store: st, Providers: providers, Buffer: lc.Buffer, MaxLineBytes: lc.MaxLineBytes,
		MaxAge: lc.Retention, MaxRecords: lc.MaxRecords, Metrics: m, Logger: log})
	if err != nil {
		return fail(err)
	}
	return p, nil
}

// logBus records every event its publisher sends as a log record (sandbox
// lifecycle, task status and progress) before passing it on. Only the
// process that committed a change publishes it, so each is recorded once.
type logBus struct {
	events.Bus
	logs *logs.Pipeline
}

func (b logBus) Publish(ctx context.Context, e *events.Event) error {
	b.logs.Emit(eventRecord(e))
	return b.Bus.Publish(ctx, e)
}

func eventRecord(e *events.Event) logs.Record {
	r := logs.Record{Time: e.Time, Labels: logs.Labels{Project: e.ProjectID, VMID: e.VMID, TaskID: e.TaskID, Level: logs.LevelInfo}}
	var b strings.Builder
	switch e.Kind {
	case events.KindVM:
		r.Stream = logs.StreamLifecycle
		b.WriteString("sandbox " + e.Status)
	default:
		r.Stream = logs.StreamTask
		b.WriteString("task " + e.TaskType + " " + e.Status)
		if e.Progress != "" {
			b.WriteString(": " + e.Progress)
		}
	}
	if e.Error != "" {
		r.Level = logs.LevelError
		b.WriteString(" error: " + e.Error)
	}
	r.Line = b.String()
	return r
}

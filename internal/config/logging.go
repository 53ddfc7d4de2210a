package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Logging configures the log pipeline: every sandbox's lifecycle, task
// progress, exec output lines and aetherd's own logs become records, kept
// in a local store (always on) and copied to providers.
type Logging struct {
	// Providers copy records out: stdout, loki. Empty means none (the
	// local store always keeps them).
	Providers []string `yaml:"providers"`
	// MaxLineBytes caps one record's line; longer lines are cut and marked
	// truncated. Default 8192.
	MaxLineBytes int `yaml:"max_line_bytes"`
	// Retention is how long the local store keeps records. Default 168h.
	Retention time.Duration `yaml:"retention"`
	// MaxRecords bounds the local store's size in records. Default 2,000,000.
	MaxRecords int64 `yaml:"max_records"`
	// Buffer is how many records may wait for the local store before new
	// ones are dropped (and counted): exec never waits for logging. Default 65536.
	Buffer int `yaml:"buffer"`
	// ExecOutput makes every exec's stdout and stderr lines log records.
	// Default true; false keeps exec output out of the log store and the
	// providers (each execution still keeps its own bounded output).
	ExecOutput bool `yaml:"exec_output"`
	// Stdout configures the stdout provider.
	Stdout LogStdout `yaml:"stdout"`
	// Loki configures the loki provider.
	Loki Loki `yaml:"loki"`

	// Provider and Config are the seed's spelling (one provider, its
	// settings under config.<name>); Load maps them onto the fields above.
	Provider string    `yaml:"provider"`
	Config   *seedLogs `yaml:"config"`
	Level    string    `yaml:"level"`  // seed: log_level
	Format   string    `yaml:"format"` // seed: log_format
	Output   string    `yaml:"output"` // seed: stdout only
}

// LogStdout configures the stdout provider.
type LogStdout struct {
	// Format is json (one record per line, default) or text.
	Format string `yaml:"format"`
}

// Loki configures the Loki provider (Grafana Loki, or anything speaking its
// push API).
type Loki struct {
	// URL is the push endpoint: a base URL gets /loki/api/v1/push appended.
	URL string `yaml:"url"`
	// Labels are static stream labels, like {service: aetherium}.
	Labels map[string]string `yaml:"labels"`
	// IDLabels lists IDs made stream labels (project, vm_id, task_id,
	// execution_id). Default none: IDs go into structured metadata, since
	// every distinct label value is a new Loki stream.
	IDLabels []string `yaml:"id_labels"`
	// IDsInLine writes IDs as key=value in front of the line instead of as
	// structured metadata (Loki before 3.0).
	IDsInLine bool `yaml:"ids_in_line"`
	// TenantID is sent as X-Scope-OrgID.
	TenantID string `yaml:"tenant_id"`
	// Username and Password are basic auth (Grafana Cloud).
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// BatchSize and BatchWait: a push goes when either is reached. Default 1000, 1s.
	BatchSize int           `yaml:"batch_size"`
	BatchWait time.Duration `yaml:"batch_wait"`
	// Buffer is how many records wait while Loki is slow or down before new
	// ones are dropped (counted in aether_logs_dropped_total). Default 100000.
	Buffer int `yaml:"buffer"`
}

// seedLogs is the seed's logging.config: settings per provider.
type seedLogs struct {
	Loki *struct {
		URL       string        `yaml:"url"`
		BatchSize int           `yaml:"batch_size"`
		BatchWait time.Duration `yaml:"batch_wait"`
	} `yaml:"loki"`
	Stdout *struct {
		Format string `yaml:"format"`
	} `yaml:"stdout"`
	Elasticsearch any `yaml:"elasticsearch"`
	Cloudwatch    any `yaml:"cloudwatch"`
}

var logProviders = []string{"stdout", "loki"}

// normalize maps the seed's spelling onto ours.
func (l *Logging) normalize(c *Config) error {
	if l.Provider != "" {
		if !slices.Contains(logProviders, l.Provider) {
			return fmt.Errorf("config: logging.provider: %q is not supported; use logging.providers: [stdout] or [loki] (elasticsearch and cloudwatch can read from Loki or stdout)", l.Provider)
		}
		if len(l.Providers) > 0 {
			return fmt.Errorf("config: logging.provider and logging.providers: set one (providers is a list)")
		}
		l.Providers, l.Provider = []string{l.Provider}, ""
	}
	if s := l.Config; s != nil {
		if s.Loki != nil {
			l.Loki.URL, l.Loki.BatchSize, l.Loki.BatchWait = s.Loki.URL, s.Loki.BatchSize, s.Loki.BatchWait
		}
		if s.Stdout != nil {
			l.Stdout.Format = s.Stdout.Format
		}
		l.Config = nil
	}
	if l.Level != "" {
		c.LogLevel, l.Level = l.Level, ""
	}
	if l.Format != "" {
		c.LogFormat, l.Format = l.Format, ""
	}
	if l.Output != "" && l.Output != "stdout" && l.Output != "stderr" {
		return fmt.Errorf("config: logging.output: %q: aetherd writes its own logs to stderr; copy them elsewhere with logging.providers", l.Output)
	}
	l.Output = ""
	return nil
}

func (l *Logging) validate() []error {
	var errs []error
	for _, p := range l.Providers {
		if !slices.Contains(logProviders, p) {
			errs = append(errs, fmt.Errorf("config: logging.providers: %q is not one of %s", p, strings.Join(logProviders, ", ")))
		}
	}
	if slices.Contains(l.Providers, "loki") {
		if u, err := url.Parse(l.Loki.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("config: logging.loki.url: %q is not an http(s) URL, like http://loki:3100", l.Loki.URL))
		}
	}
	if l.Stdout.Format != "json" && l.Stdout.Format != "text" {
		errs = append(errs, fmt.Errorf("config: logging.stdout.format: %q is not json or text", l.Stdout.Format))
	}
	if l.MaxLineBytes < 64 || l.MaxLineBytes > 1<<20 {
		errs = append(errs, fmt.Errorf("config: logging.max_line_bytes: %d is not between 64 and 1048576", l.MaxLineBytes))
	}
	if l.Retention < time.Minute || l.MaxRecords < 1000 || l.Buffer < 1 {
		errs = append(errs, fmt.Errorf("config: logging.retention must be >= 1m, logging.max_records >= 1000, logging.buffer >= 1"))
	}
	if l.Loki.BatchSize < 1 || l.Loki.BatchWait <= 0 || l.Loki.Buffer < l.Loki.BatchSize {
		errs = append(errs, fmt.Errorf("config: logging.loki.batch_size must be >= 1 and <= logging.loki.buffer, batch_wait positive"))
	}
	return errs
}

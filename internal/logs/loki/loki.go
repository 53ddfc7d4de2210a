// Package loki is the Loki log provider: it pushes records to Grafana Loki,
// or any server speaking Loki's push API (VictoriaLogs at
// /insert/loki/api/v1/push), as JSON, in batches, through a logs.Shipper
// (bounded buffer, retries with backoff, drops counted).
//
// Cardinality: stream labels are only stream, level and the configured
// static labels; IDs (project, vm_id, task_id, execution_id) become labels
// only when listed in IDLabels, and otherwise travel as structured metadata
// (Loki 3+) or, with IDsInLine, as key=value text in front of the line.
package loki

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aetherium/aetherium/internal/logs"
)

// IDs are the labels that are IDs: never stream labels unless configured.
var IDs = []string{"project", "vm_id", "task_id", "execution_id"}

// Config configures the provider.
type Config struct {
	// URL is the push endpoint: a base URL (http://loki:3100) gets
	// /loki/api/v1/push appended; a URL with a path is used as is
	// (http://vl:9428/insert/loki/api/v1/push). Required.
	URL string
	// Labels are static stream labels added to every record (service: aetherium).
	Labels map[string]string
	// IDLabels lists IDs (of IDs) made stream labels; empty means none.
	IDLabels []string
	// IDsInLine writes IDs as key=value before the line instead of as
	// structured metadata (for Loki before 3.0, which has none).
	IDsInLine bool
	// TenantID is sent as X-Scope-OrgID when set (multi-tenant Loki).
	TenantID string
	// Username and Password are HTTP basic auth when Username is set
	// (Grafana Cloud: the instance ID and an API token).
	Username, Password string
	// BatchSize, BatchWait and Buffer are the logs.ShipperConfig fields; 0
	// means 1000, 1s and 100,000.
	BatchSize int
	BatchWait time.Duration
	Buffer    int
	// MaxBackoff bounds the wait between retries; 0 means 10s.
	MaxBackoff time.Duration
	// Timeout bounds one push; 0 means 10s.
	Timeout time.Duration
	// Metrics and Logger are passed to the Shipper.
	Metrics *logs.Metrics
	Logger  *slog.Logger
}

// New returns the provider, already running; Close flushes and stops it.
func New(cfg Config) (*logs.Shipper, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("loki: url: %q is not an http(s) URL", cfg.URL)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/loki/api/v1/push"
	}
	for _, l := range cfg.IDLabels {
		if !slices.Contains(IDs, l) {
			return nil, fmt.Errorf("loki: id_labels: %q is not one of %s", l, strings.Join(IDs, ", "))
		}
	}
	for k := range cfg.Labels {
		if k == "stream" || k == "level" || slices.Contains(IDs, k) {
			return nil, fmt.Errorf("loki: labels: %q is set by aetherd itself", k)
		}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	p := &pusher{cfg: cfg, url: u.String(), hc: &http.Client{Timeout: cfg.Timeout}}
	return logs.NewShipper(logs.ShipperConfig{Name: "loki", Send: p.send, BatchSize: cfg.BatchSize,
		BatchWait: cfg.BatchWait, Buffer: cfg.Buffer, MaxBackoff: cfg.MaxBackoff, Metrics: cfg.Metrics, Logger: cfg.Logger})
}

type pusher struct {
	cfg Config
	url string
	hc  *http.Client
}

type stream struct {
	Stream map[string]string `json:"stream"`
	Values [][]any           `json:"values"`
}

// body encodes recs as a Loki JSON push request, one stream per label set.
func (p *pusher) body(recs []logs.Record) ([]byte, error) {
	var streams []*stream
	index := map[string]*stream{}
	for i := range recs {
		r := &recs[i]
		ids := map[string]string{"project": r.Project, "vm_id": r.VMID, "task_id": r.TaskID, "execution_id": r.ExecutionID}
		labels := map[string]string{"stream": r.Stream, "level": r.Level}
		for k, v := range p.cfg.Labels {
			labels[k] = v
		}
		for _, k := range p.cfg.IDLabels {
			if ids[k] != "" {
				labels[k] = ids[k]
			}
			delete(ids, k)
		}
		for k, v := range labels {
			if v == "" {
				delete(labels, k)
			}
		}
		key := labelKey(labels)
		s := index[key]
		if s == nil {
			s = &stream{Stream: labels}
			index[key] = s
			streams = append(streams, s)
		}
		meta := map[string]string{}
		for _, k := range IDs {
			if v, ok := ids[k]; ok && v != "" {
				meta[k] = v
			}
		}
		if r.Truncated {
			meta["truncated"] = "true"
		}
		line := r.Line
		if p.cfg.IDsInLine && len(meta) > 0 {
			var b strings.Builder
			for _, k := range append(slices.Clone(IDs), "truncated") {
				if v, ok := meta[k]; ok {
					b.WriteString(k + "=" + v + " ")
				}
			}
			line, meta = b.String()+line, nil
		}
		v := []any{strconv.FormatInt(r.Time.UnixNano(), 10), line}
		if len(meta) > 0 {
			v = append(v, meta)
		}
		s.Values = append(s.Values, v)
	}
	return json.Marshal(map[string]any{"streams": streams})
}

func labelKey(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "\x00" + l[k] + "\x00")
	}
	return b.String()
}

func (p *pusher) send(ctx context.Context, recs []logs.Record) error {
	body, err := p.body(recs)
	if err != nil {
		return errors.Join(logs.ErrPermanent, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return errors.Join(logs.ErrPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if p.cfg.TenantID != "" {
		req.Header.Set("X-Scope-OrgID", p.cfg.TenantID)
	}
	if p.cfg.Username != "" {
		req.SetBasicAuth(p.cfg.Username, p.cfg.Password)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode/100 == 5:
		return fmt.Errorf("loki: %s: %s", resp.Status, bytes.TrimSpace(msg))
	default: // 4xx: the same batch would be refused again
		return fmt.Errorf("%w: loki: %s: %s", logs.ErrPermanent, resp.Status, bytes.TrimSpace(msg))
	}
}

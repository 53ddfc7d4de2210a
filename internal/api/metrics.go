package api

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/aetherium/aetherium/internal/store"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	execs    *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aether_http_requests_total", Help: "API requests by route pattern and status class.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "aether_http_request_duration_seconds", Help: "API request latency by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 60},
		}, []string{"route"}),
		execs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aether_execs_total", Help: "Interactive execs by outcome.",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.requests, m.latency, m.execs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// poolCollector reports each template's warm pool from the store at scrape
// time, so every api process shows the same numbers.
type poolCollector struct {
	s     *Server
	ready *prometheus.Desc
	size  *prometheus.Desc
}

func newPoolCollector(s *Server) *poolCollector {
	return &poolCollector{s: s,
		ready: prometheus.NewDesc("aether_pool_ready", "Started sandboxes waiting in a template's warm pool.", []string{"template"}, nil),
		size:  prometheus.NewDesc("aether_pool_size", "Configured warm pool size of a template.", []string{"template"}, nil),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.ready; ch <- c.size }

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	pools, err := c.s.poolStats(ctx)
	if err != nil {
		return
	}
	for name, p := range pools {
		ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, float64(p.Ready), name)
		ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(p.Size), name)
	}
}

// poolStat is one template's warm pool.
type poolStat struct {
	Ready int `json:"ready"`
	Size  int `json:"size"`
}

// poolStats counts ready pool sandboxes per template with a pool.
func (s *Server) poolStats(ctx context.Context) (map[string]poolStat, error) {
	tpls, err := s.store.TemplateList(ctx, store.AllProjects)
	if err != nil {
		return nil, err
	}
	pool, err := s.store.VMList(ctx, &store.VMListParams{ProjectID: store.AllProjects, Pooled: true})
	if err != nil {
		return nil, err
	}
	ready := map[string]int{}
	for _, vm := range pool {
		if vm.Status == store.VMPooled {
			ready[vm.Template]++
		}
	}
	out := map[string]poolStat{}
	for _, t := range tpls {
		if t.PoolSize > 0 || ready[t.ID] > 0 {
			out[t.Name] = poolStat{Ready: ready[t.ID], Size: t.PoolSize}
		}
	}
	return out, nil
}

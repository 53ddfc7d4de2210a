package logs

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the pipeline's and providers' counters, served at /metrics.
type Metrics struct {
	accepted prometheus.Counter
	stored   prometheus.Counter
	pruned   prometheus.Counter
	// dropped is by where: pipeline (buffer full), store (append failed) or
	// a provider's name (its buffer full, or a batch it gave up on).
	dropped *prometheus.CounterVec
	shipped *prometheus.CounterVec
	errors  *prometheus.CounterVec
}

// NewMetrics returns the log metrics, registered with reg when it is not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		accepted: prometheus.NewCounter(prometheus.CounterOpts{Name: "aether_logs_records_total",
			Help: "Log records accepted by the pipeline."}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{Name: "aether_logs_stored_total",
			Help: "Log records written to the local store."}),
		pruned: prometheus.NewCounter(prometheus.CounterOpts{Name: "aether_logs_pruned_total",
			Help: "Log records deleted by retention."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aether_logs_dropped_total",
			Help: "Log records dropped, by where: pipeline (buffer full), store (write failed) or a provider."}, []string{"where"}),
		shipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aether_logs_shipped_total",
			Help: "Log records a provider delivered."}, []string{"provider"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aether_logs_push_errors_total",
			Help: "Failed provider pushes (each is retried with backoff)."}, []string{"provider"}),
	}
	if reg != nil {
		reg.MustRegister(m.accepted, m.stored, m.pruned, m.dropped, m.shipped, m.errors)
	}
	return m
}

package logs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// ErrPermanent, wrapped by a SendFunc's error, makes the Shipper give up on
// that batch (counted as dropped) instead of retrying: the peer refused it
// and would refuse it again.
var ErrPermanent = errors.New("permanent push failure")

// SendFunc delivers one batch; errors are retried with backoff unless they
// wrap ErrPermanent.
type SendFunc func(ctx context.Context, recs []Record) error

// ShipperConfig configures a Shipper.
type ShipperConfig struct {
	// Name is the provider's name in metrics ("loki"). Required.
	Name string
	// Send delivers a batch. Required.
	Send SendFunc
	// BatchSize is the most records per Send; 0 means 1000.
	BatchSize int
	// BatchWait is how long a partial batch waits for more; 0 means 1s.
	BatchWait time.Duration
	// Buffer is how many records wait (while the peer is slow or down)
	// before new ones are dropped and counted; 0 means 100,000.
	Buffer int
	// MinBackoff and MaxBackoff bound the wait between retries of a failed
	// batch (doubling, jittered); 0 means 100ms and 10s.
	MinBackoff, MaxBackoff time.Duration
	// Metrics counts shipped, dropped and failed pushes; nil means unregistered.
	Metrics *Metrics
	// Logger receives push failures (one per outage, not per retry); nil discards.
	Logger *slog.Logger
}

// Shipper is a Provider built on a SendFunc: a bounded buffer, batches by
// size and time, retries with backoff until the peer answers, so an outage
// loses only what overflows the buffer (counted), and Offer never blocks.
type Shipper struct {
	cfg      ShipperConfig
	mu       sync.Mutex
	pending  []Record
	kick     chan struct{}
	stopping chan struct{}
	abort    chan struct{}
	done     chan struct{}
	once     sync.Once
}

var _ Provider = (*Shipper)(nil)

// NewShipper starts a Shipper's sending goroutine; Close stops it.
func NewShipper(cfg ShipperConfig) (*Shipper, error) {
	if cfg.Name == "" || cfg.Send == nil {
		return nil, errors.New("logs: shipper: Name and Send are required")
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 1000
	}
	if cfg.BatchWait == 0 {
		cfg.BatchWait = time.Second
	}
	if cfg.Buffer == 0 {
		cfg.Buffer = 100_000
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BatchSize < 1 || cfg.Buffer < cfg.BatchSize || cfg.MinBackoff > cfg.MaxBackoff {
		return nil, errors.New("logs: shipper: BatchSize must be positive and at most Buffer, MinBackoff at most MaxBackoff")
	}
	s := &Shipper{cfg: cfg, kick: make(chan struct{}, 1), stopping: make(chan struct{}),
		abort: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s, nil
}

// Name implements Provider.
func (s *Shipper) Name() string { return s.cfg.Name }

// Offer implements Provider: what does not fit the buffer is dropped and counted.
func (s *Shipper) Offer(recs []Record) {
	s.mu.Lock()
	n := min(len(recs), s.cfg.Buffer-len(s.pending))
	s.pending = append(s.pending, recs[:n]...)
	s.mu.Unlock()
	if drop := len(recs) - n; drop > 0 {
		s.cfg.Metrics.dropped.WithLabelValues(s.cfg.Name).Add(float64(drop))
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Close implements Provider: it keeps sending (and retrying) what is
// buffered until ctx ends, then drops and counts the rest.
func (s *Shipper) Close(ctx context.Context) error {
	s.once.Do(func() {
		close(s.stopping)
		select {
		case <-s.done:
		case <-ctx.Done():
			close(s.abort)
			<-s.done
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.pending); n > 0 {
		s.cfg.Metrics.dropped.WithLabelValues(s.cfg.Name).Add(float64(n))
		s.pending = nil
		return errors.New("logs: " + s.cfg.Name + ": records left unsent at shutdown")
	}
	return nil
}

func (s *Shipper) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

func (s *Shipper) run() {
	defer close(s.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.abort:
			cancel()
		case <-ctx.Done():
		}
	}()
	stopping := false
	for {
		if s.size() == 0 {
			if stopping {
				return
			}
			select {
			case <-s.kick:
			case <-s.stopping:
				stopping = true
			}
			continue
		}
		// Something is pending: wait for a full batch or BatchWait.
		if !stopping {
			wait := time.NewTimer(s.cfg.BatchWait)
		gather:
			for s.size() < s.cfg.BatchSize {
				select {
				case <-s.kick:
				case <-wait.C:
					break gather
				case <-s.stopping:
					stopping = true
					break gather
				}
			}
			wait.Stop()
		}
		for s.size() > 0 {
			if !s.sendOne(ctx) {
				return // aborted
			}
		}
	}
}

// sendOne sends the oldest batch, retrying until it is delivered, refused
// for good, or the shipper is aborted (false).
func (s *Shipper) sendOne(ctx context.Context) bool {
	s.mu.Lock()
	n := min(len(s.pending), s.cfg.BatchSize)
	batch := make([]Record, n)
	copy(batch, s.pending)
	s.mu.Unlock()
	backoff, failing := s.cfg.MinBackoff, false
	for {
		err := s.cfg.Send(ctx, batch)
		if err == nil || errors.Is(err, ErrPermanent) {
			if err == nil {
				s.cfg.Metrics.shipped.WithLabelValues(s.cfg.Name).Add(float64(n))
				if failing {
					s.cfg.Logger.Info("log push recovered", slog.String("provider", s.cfg.Name))
				}
			} else {
				s.cfg.Metrics.dropped.WithLabelValues(s.cfg.Name).Add(float64(n))
				s.cfg.Logger.Warn("log push refused; batch dropped", slog.String("provider", s.cfg.Name), slog.Any("err", err))
			}
			s.mu.Lock()
			s.pending = append(s.pending[:0], s.pending[n:]...)
			s.mu.Unlock()
			return true
		}
		s.cfg.Metrics.errors.WithLabelValues(s.cfg.Name).Inc()
		if !failing {
			s.cfg.Logger.Warn("log push failed; retrying with backoff", slog.String("provider", s.cfg.Name), slog.Any("err", err))
			failing = true
		}
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

// NewStdout returns the stdout provider: each record as one line on w, as
// JSON (format "json" or "") or text (time stream level IDs line), through
// a Shipper so a blocked w never blocks the pipeline.
func NewStdout(w io.Writer, format string, m *Metrics) (*Shipper, error) {
	var mu sync.Mutex
	return NewShipper(ShipperConfig{Name: "stdout", BatchWait: 50 * time.Millisecond, Metrics: m,
		Send: func(_ context.Context, recs []Record) error {
			mu.Lock()
			defer mu.Unlock()
			bw := bufio.NewWriter(w)
			enc := json.NewEncoder(bw)
			for i := range recs {
				r := &recs[i]
				if format == "text" {
					fmt.Fprintf(bw, "%s %s %s", r.Time.UTC().Format(time.RFC3339Nano), r.Stream, r.Level)
					for _, kv := range [][2]string{{"project", r.Project}, {"vm_id", r.VMID}, {"task_id", r.TaskID}, {"execution_id", r.ExecutionID}} {
						if kv[1] != "" {
							fmt.Fprintf(bw, " %s=%s", kv[0], kv[1])
						}
					}
					fmt.Fprintf(bw, " %s\n", r.Line)
				} else if err := enc.Encode(r); err != nil {
					return errors.Join(ErrPermanent, err)
				}
			}
			if err := bw.Flush(); err != nil {
				return errors.Join(ErrPermanent, err)
			}
			return nil
		}})
}

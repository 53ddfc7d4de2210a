package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"
)

// Provider copies records out of aetherd (stdout, Loki). Implementations are
// safe for concurrent use.
type Provider interface {
	// Name is the provider's configuration name ("stdout", "loki").
	Name() string
	// Offer hands records over and returns at once: a provider that cannot
	// keep up drops records and counts them, it never blocks the pipeline.
	Offer(recs []Record)
	// Close sends what is buffered, giving up when ctx ends, and stops.
	// Idempotent.
	Close(ctx context.Context) error
}

// Config configures a Pipeline.
type Config struct {
	// Store keeps every record locally. Required.
	Store Store
	// Hub receives every stored record for live tails; nil means a new one.
	Hub *Hub
	// Providers get a copy of every record.
	Providers []Provider
	// Buffer is how many records wait for the store before Emit drops new
	// ones; 0 means 65536.
	Buffer int
	// BatchSize is the most records written to the store at once; 0 means 2048.
	BatchSize int
	// MaxLineBytes caps a record's line; longer lines are cut there and
	// marked Truncated. 0 means 8192.
	MaxLineBytes int
	// MaxAge is how long records are kept; 0 means 7 days.
	MaxAge time.Duration
	// MaxRecords is how many records are kept at most; 0 means 2,000,000.
	MaxRecords int64
	// PruneInterval is how often retention is applied; 0 means 1 minute.
	PruneInterval time.Duration
	// Metrics counts records and drops; nil means unregistered counters.
	Metrics *Metrics
	// Logger receives the pipeline's own errors. It must not feed this
	// pipeline (a store failure would log about itself). nil discards.
	Logger *slog.Logger
}

func (c *Config) withDefaults() {
	if c.Hub == nil {
		c.Hub = NewHub()
	}
	if c.Buffer == 0 {
		c.Buffer = 65536
	}
	if c.BatchSize == 0 {
		c.BatchSize = 2048
	}
	if c.MaxLineBytes == 0 {
		c.MaxLineBytes = 8192
	}
	if c.MaxAge == 0 {
		c.MaxAge = 7 * 24 * time.Hour
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = 2_000_000
	}
	if c.PruneInterval == 0 {
		c.PruneInterval = time.Minute
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	switch {
	case c.Store == nil:
		return errors.New("logs: Store is required")
	case c.Buffer < 1 || c.BatchSize < 1:
		return errors.New("logs: Buffer and BatchSize must be positive")
	case c.MaxLineBytes < 64:
		return errors.New("logs: MaxLineBytes must be at least 64")
	case c.MaxAge < 0 || c.MaxRecords < 0:
		return errors.New("logs: MaxAge and MaxRecords must not be negative")
	}
	return nil
}

// Pipeline takes records from anywhere in aetherd and stores, tails and
// ships them. Emit never blocks. Safe for concurrent use.
type Pipeline struct {
	cfg  Config
	in   chan Record
	stop chan struct{}
	done chan struct{}
	once sync.Once
	// errs counts store failures since the last one logged.
	errs int
}

// New returns a Pipeline; Start runs it.
func New(cfg Config) (*Pipeline, error) {
	cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Pipeline{cfg: cfg, in: make(chan Record, cfg.Buffer), stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// Hub is the pipeline's live tail.
func (p *Pipeline) Hub() *Hub { return p.cfg.Hub }

// Store is the pipeline's local store.
func (p *Pipeline) Store() Store { return p.cfg.Store }

// Emit queues r without blocking; when the buffer is full r is dropped and
// counted. A zero Time means now; a line over MaxLineBytes is cut and marked.
func (p *Pipeline) Emit(r Record) {
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	if len(r.Line) > p.cfg.MaxLineBytes {
		r.Line, r.Truncated = cut(r.Line, p.cfg.MaxLineBytes), true
	}
	select {
	case p.in <- r:
		p.cfg.Metrics.accepted.Inc()
	default:
		p.cfg.Metrics.dropped.WithLabelValues("pipeline").Inc()
	}
}

// cut returns s's first max bytes, backing off so no UTF-8 sequence is split.
func cut(s string, max int) string {
	s = s[:max]
	for i := 0; i < utf8.UTFMax && len(s) > 0; i++ {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size != 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}

// LineWriter returns a writer that turns a byte stream into records with
// labels l, one per line, capped at MaxLineBytes.
func (p *Pipeline) LineWriter(l Labels) *LineWriter {
	return &LineWriter{emit: p.Emit, labels: l, max: p.cfg.MaxLineBytes}
}

// Start runs the pipeline until Stop. It returns at once.
func (p *Pipeline) Start(ctx context.Context) error {
	go p.run(context.WithoutCancel(ctx))
	return nil
}

// Stop stores and ships what was emitted before it, giving up when ctx ends,
// then closes the providers. Idempotent; safe before Start only if Start is
// never called.
func (p *Pipeline) Stop(ctx context.Context) error {
	var err error
	p.once.Do(func() {
		close(p.stop)
		select {
		case <-p.done:
		case <-ctx.Done():
			err = fmt.Errorf("logs: stop: %w", ctx.Err())
		}
		for _, pr := range p.cfg.Providers {
			err = errors.Join(err, pr.Close(ctx))
		}
	})
	return err
}

func (p *Pipeline) run(ctx context.Context) {
	defer close(p.done)
	prune := time.NewTicker(p.cfg.PruneInterval)
	defer prune.Stop()
	batch := make([]Record, 0, p.cfg.BatchSize)
	for {
		select {
		case r := <-p.in:
			batch = append(batch[:0], r)
			batch = p.fill(batch)
			p.flush(ctx, batch)
		case <-prune.C:
			p.prune(ctx)
		case <-p.stop:
			for {
				batch = p.fill(batch[:0])
				if len(batch) == 0 {
					return
				}
				p.flush(ctx, batch)
			}
		}
	}
}

// fill adds what is already queued, up to BatchSize.
func (p *Pipeline) fill(batch []Record) []Record {
	for len(batch) < p.cfg.BatchSize {
		select {
		case r := <-p.in:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

func (p *Pipeline) flush(ctx context.Context, batch []Record) {
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := p.cfg.Store.Append(sctx, batch)
	cancel()
	if err != nil {
		p.cfg.Metrics.dropped.WithLabelValues("store").Add(float64(len(batch)))
		if p.errs%1000 == 0 {
			p.cfg.Logger.Warn("log store append failed; records kept only by providers", slog.Int("records", len(batch)),
				slog.Int("failures_before", p.errs), slog.Any("err", err))
		}
		p.errs++
	} else {
		p.cfg.Metrics.stored.Add(float64(len(batch)))
	}
	p.cfg.Hub.Publish(batch)
	for _, pr := range p.cfg.Providers {
		pr.Offer(batch)
	}
}

func (p *Pipeline) prune(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	n, err := p.cfg.Store.Prune(sctx, time.Now().Add(-p.cfg.MaxAge), p.cfg.MaxRecords)
	if err != nil {
		p.cfg.Logger.Warn("log retention failed", slog.Any("err", err))
		return
	}
	p.cfg.Metrics.pruned.Add(float64(n))
}

// LineWriter splits a byte stream into records, one per line ("\n", a
// trailing "\r" removed). A line longer than the cap is emitted cut and
// marked Truncated, and the rest of it is discarded, so memory stays
// bounded whatever the stream. Write never blocks and never fails. Not safe
// for concurrent use: one per stream.
type LineWriter struct {
	emit    func(Record)
	labels  Labels
	max     int
	buf     []byte
	discard bool
}

// Write implements io.Writer.
func (w *LineWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		chunk := b
		if i >= 0 {
			chunk = b[:i]
		}
		if !w.discard {
			room := w.max - len(w.buf)
			if len(chunk) > room {
				w.buf = append(w.buf, chunk[:room]...)
				w.line(true)
				w.discard = true
			} else {
				w.buf = append(w.buf, chunk...)
			}
		}
		if i < 0 {
			break
		}
		if !w.discard {
			w.line(false)
		}
		w.discard = false
		b = b[i+1:]
	}
	return n, nil
}

// Flush emits a final line that had no newline.
func (w *LineWriter) Flush() {
	if len(w.buf) > 0 && !w.discard {
		w.line(false)
	}
	w.buf, w.discard = w.buf[:0], false
}

func (w *LineWriter) line(truncated bool) {
	s := w.buf
	if !truncated && len(s) > 0 && s[len(s)-1] == '\r' {
		s = s[:len(s)-1]
	}
	line := string(s)
	if truncated {
		line = cut(line, len(line))
	}
	w.emit(Record{Time: time.Now(), Labels: w.labels, Line: line, Truncated: truncated})
	w.buf = w.buf[:0]
}

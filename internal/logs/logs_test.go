package logs

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// memStore is a fake Store keeping records in memory.
type memStore struct {
	mu   sync.Mutex
	recs []Record
	err  error
}

func (m *memStore) Append(_ context.Context, recs []Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	for i := range recs {
		recs[i].ID = int64(len(m.recs) + 1)
		m.recs = append(m.recs, recs[i])
	}
	return nil
}

func (m *memStore) Query(context.Context, *Query) (*Result, error) { return nil, errors.New("unused") }
func (m *memStore) Prune(context.Context, time.Time, int64) (int64, error) {
	return 0, nil
}
func (m *memStore) Close() error { return nil }

func (m *memStore) lines() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, r := range m.recs {
		s := r.Line
		if r.Truncated {
			s += "…"
		}
		out = append(out, s)
	}
	return out
}

func TestLineWriter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		writes []string
		want   []string
	}{
		{"lines", []string{"a\nb\n"}, []string{"a", "b"}},
		{"split across writes", []string{"he", "llo\nwor", "ld\n"}, []string{"hello", "world"}},
		{"crlf and empty lines", []string{"a\r\n\nb\n"}, []string{"a", "", "b"}},
		{"final line without newline", []string{"a\nlast"}, []string{"a", "last"}},
		{"long line cut and marked, rest dropped", []string{strings.Repeat("x", 70) + "\nok\n"}, []string{strings.Repeat("x", 64) + "…", "ok"}},
		{"long line over many writes", []string{strings.Repeat("y", 40), strings.Repeat("y", 40), strings.Repeat("y", 40), "\nz"}, []string{strings.Repeat("y", 64) + "…", "z"}},
		{"exactly the cap is not cut", []string{strings.Repeat("z", 64) + "\n"}, []string{strings.Repeat("z", 64)}},
		{"cut never splits a rune", []string{strings.Repeat("a", 63) + "é\n"}, []string{strings.Repeat("a", 63) + "…"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			w := &LineWriter{max: 64, emit: func(r Record) {
				s := r.Line
				if r.Truncated {
					s += "…"
				}
				got = append(got, s)
			}}
			for _, s := range tt.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			w.Flush()
			if !slices.Equal(got, tt.want) {
				t.Errorf("writes %q: got %q, want %q", tt.writes, got, tt.want)
			}
		})
	}
}

func TestHubDropsAndCounts(t *testing.T) {
	t.Parallel()
	h := NewHub()
	slow := h.Subscribe(Query{Labels: Labels{Project: "p"}}, 2)
	other := h.Subscribe(Query{Labels: Labels{Project: "q"}}, 2)
	defer other.Close()
	recs := []Record{{Line: "1", Labels: Labels{Project: "p"}}, {Line: "2", Labels: Labels{Project: "p"}},
		{Line: "3", Labels: Labels{Project: "p"}}, {Line: "x", Labels: Labels{Project: "q"}}}
	h.Publish(recs) // never blocks, though slow reads nothing
	if got := slow.Dropped(); got != 1 {
		t.Errorf("dropped %d, want 1", got)
	}
	if got := (<-slow.C()).Line + (<-slow.C()).Line; got != "12" {
		t.Errorf("received %q, want the first two", got)
	}
	if r := <-other.C(); r.Line != "x" || other.Dropped() != 0 {
		t.Errorf("other subscriber got %q, dropped %d", r.Line, other.Dropped())
	}
	slow.Close()
	slow.Close()
	if _, ok := <-slow.C(); ok {
		t.Error("channel open after Close")
	}
	h.Publish(recs) // no subscriber left for p: nothing to do, no panic
}

func TestPipelineStoresPublishesAndShips(t *testing.T) {
	t.Parallel()
	st := &memStore{}
	var mu sync.Mutex
	var shipped []string
	sh, err := NewShipper(ShipperConfig{Name: "test", BatchWait: time.Millisecond, Send: func(_ context.Context, recs []Record) error {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			shipped = append(shipped, r.Line)
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Store: st, Providers: []Provider{sh}, MaxLineBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	sub := p.Hub().Subscribe(Query{Labels: Labels{Project: "p"}}, 10)
	defer sub.Close()
	p.Start(t.Context())
	lw := p.LineWriter(Labels{Project: "p", Stream: StreamStdout})
	lw.Write([]byte("one\ntwo\n"))
	p.Emit(Record{Line: strings.Repeat("l", 100), Labels: Labels{Project: "p"}})
	if r := <-sub.C(); r.Line != "one" || r.ID == 0 {
		t.Errorf("tail got %+v, want line one with its ID", r)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"one", "two", strings.Repeat("l", 64) + "…"}
	if got := st.lines(); !slices.Equal(got, want) {
		t.Errorf("stored %q, want %q", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(shipped, []string{"one", "two", strings.Repeat("l", 64)}) {
		t.Errorf("shipped %q", shipped)
	}
}

// TestEmitNeverBlocks: with nothing draining the pipeline, Emit drops and
// counts instead of waiting.
func TestEmitNeverBlocks(t *testing.T) {
	t.Parallel()
	m := NewMetrics(nil)
	p, err := New(Config{Store: &memStore{}, Buffer: 3, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		p.Emit(Record{Line: "x"}) // not started: nothing drains
	}
	if got := counterValue(t, m.dropped.WithLabelValues("pipeline")); got != 7 {
		t.Errorf("dropped %v, want 7", got)
	}
}

// TestShipperRetriesThenDelivers: failures are retried with backoff and
// the batch arrives once the peer answers; a full buffer drops and counts.
func TestShipperRetriesThenDelivers(t *testing.T) {
	t.Parallel()
	m := NewMetrics(nil)
	var mu sync.Mutex
	down, calls := true, 0
	var got []string
	arrived := make(chan struct{})
	sh, err := NewShipper(ShipperConfig{Name: "peer", BatchSize: 2, Buffer: 4, BatchWait: time.Millisecond,
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Metrics: m,
		Send: func(_ context.Context, recs []Record) error {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if down {
				if calls == 3 {
					down = false
				}
				return errors.New("connection refused")
			}
			for _, r := range recs {
				got = append(got, r.Line)
			}
			if len(got) == 4 {
				close(arrived)
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	sh.Offer([]Record{{Line: "a"}, {Line: "b"}, {Line: "c"}, {Line: "d"}, {Line: "e"}, {Line: "f"}})
	<-arrived
	if err := sh.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Errorf("delivered %q", got)
	}
	if d := counterValue(t, m.dropped.WithLabelValues("peer")); d != 2 {
		t.Errorf("dropped %v, want 2 (buffer of 4)", d)
	}
	if e := counterValue(t, m.errors.WithLabelValues("peer")); e != 3 {
		t.Errorf("push errors %v, want 3", e)
	}
}

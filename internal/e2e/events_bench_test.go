package e2e_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
)

// fanoutConfig lifts the per-key caps a thousand streams of one key would
// hit, so the bus and the SSE path are measured, not the limiter.
const fanoutConfig = "api:\n  max_conns: 4096\n  max_streams: 4096\n  rate_limits:\n    default: {per_second: 0}\n"

// BenchmarkEventFanout is issue 13's events goal: 1,000 SSE subscribers
// (GET /api/v1/events) on one aetherd; each round pauses and resumes a
// sandbox, and every subscriber's delay from the event's commit (its time)
// to its arrival is a sample. The baseline, in the same run, is the same
// delay with one subscriber. Embedded mode (in-process bus) and distributed
// mode (an api process on PostgreSQL + Redis, one Redis subscription fanned
// out locally, with one worker).
func BenchmarkEventFanout(b *testing.B) {
	b.Run("embedded", func(b *testing.B) {
		e := newEnv(b)
		e.proc = e.add("--runtime", "docker", "--config", writeConfig(b, fanoutConfig))
		e.connect(e.proc)
		e.start()
		benchFanout(b, e)
	})
	b.Run("distributed", func(b *testing.B) {
		c := newClusterTB(b, 1, fanoutConfig)
		benchFanout(b, c.testEnv)
	})
}

func benchFanout(b *testing.B, e *testEnv) {
	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "fanout"})
	one := newSubscribers(b, e, vm.ID, 1)
	var base samples
	rounds := 0
	for b.Loop() {
		base = append(base, fanoutRound(b, e, vm.ID, one)...)
		rounds++
	}
	many := newSubscribers(b, e, vm.ID, 1000)
	var all, last samples
	for range rounds {
		got := fanoutRound(b, e, vm.ID, many)
		all = append(all, got...)
		last = append(last, slicesMax(got))
	}
	b.ReportMetric(ms(all.pct(0.5)), "p50-ms")
	b.ReportMetric(ms(all.pct(0.99)), "p99-ms")
	b.ReportMetric(ms(last.pct(0.99)), "all-reached-p99-ms")
	b.ReportMetric(ms(base.pct(0.99)), "one-subscriber-p99-ms")
	b.Logf("event fan-out, 1000 SSE subscribers: per subscriber p50 %.2fms p99 %.2fms, until all p50 %.2fms p99 %.2fms | one subscriber p50 %.2fms p99 %.2fms (%d rounds of 2 events)",
		ms(all.pct(0.5)), ms(all.pct(0.99)), ms(last.pct(0.5)), ms(last.pct(0.99)), ms(base.pct(0.5)), ms(base.pct(0.99)), rounds)
}

func slicesMax(s samples) time.Duration {
	var m time.Duration
	for _, d := range s {
		m = max(m, d)
	}
	return m
}

// subscribers are open event streams filtered to one sandbox; each arrival
// of a vm event is sent on got as its delay since the event's commit.
type subscribers struct {
	n   int
	got chan arrival
}

type arrival struct {
	status string
	delay  time.Duration
}

func newSubscribers(b *testing.B, e *testEnv, vmID string, n int) *subscribers {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() })
	s := &subscribers{n: n, got: make(chan arrival, 4*n)}
	for range n {
		wg.Go(func() {
			e.c.Events(ctx, "vm", vmID, "", func(ev *apiv1.Event) error {
				// Never block past the end: a sender stuck on a full
				// channel kept Cleanup's wg.Wait from returning (the hang
				// of -benchtime 5x).
				select {
				case s.got <- arrival{status: ev.Status, delay: time.Since(ev.Time)}:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
		})
	}
	// Every stream is open once a round reaches all of them.
	for deadline := time.Now().Add(2 * time.Minute); ; {
		if time.Now().After(deadline) {
			b.Fatalf("%d event streams did not all open", n)
		}
		if len(fanoutRound(b, e, vmID, s)) == 2*n {
			return s
		}
	}
}

// fanoutRound pauses and resumes the sandbox and returns the delays of the
// arrivals of both changes at every subscriber (fewer if some do not arrive
// within 5 s). Arrivals left from earlier rounds (late ones, or a change
// published twice) are dropped first, so they neither count for this round
// nor pile up.
func fanoutRound(b *testing.B, e *testEnv, vmID string, s *subscribers) samples {
	var out samples
	s.drop()
	for _, step := range []struct {
		do     func(context.Context, string) (*apiv1.Accepted, error)
		status string
	}{{e.c.Pause, "paused"}, {e.c.Resume, "running"}} {
		acc, err := step.do(b.Context(), vmID)
		if err != nil {
			b.Fatal(err)
		}
		e.mustWait(acc.TaskID)
		out = append(out, s.collect(step.status)...)
	}
	return out
}

// drop discards the arrivals queued so far.
func (s *subscribers) drop() {
	for {
		select {
		case <-s.got:
		default:
			return
		}
	}
}

// collect returns the delays of the arrivals of status, until every
// subscriber had one or 5 s passed.
func (s *subscribers) collect(status string) samples {
	var out samples
	timeout := time.After(5 * time.Second)
	for len(out) < s.n {
		select {
		case a := <-s.got:
			if a.status == status {
				out = append(out, a.delay)
			}
		case <-timeout:
			return out
		}
	}
	return out
}

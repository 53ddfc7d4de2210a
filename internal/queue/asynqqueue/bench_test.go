package asynqqueue_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/queue/asynqqueue"
	"github.com/aetherium/aetherium/internal/testbin"
)

const benchConcurrency = 16

// drain enqueues n messages with enqueue, waits for n handler calls and
// returns the messages per second.
func drain(b *testing.B, n int, enqueue func(i int) error, handled *sync.WaitGroup) float64 {
	handled.Add(n)
	start := time.Now()
	for i := range n {
		if err := enqueue(i); err != nil {
			b.Fatal(err)
		}
	}
	handled.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkThroughput compares no-op messages through asynqqueue with a bare
// Asynq client/server pair, same Redis, same concurrency and poll interval,
// in the same run. b.N is the message count of each side.
func BenchmarkThroughput(b *testing.B) {
	r := testbin.StartRedis(b)
	var wg sync.WaitGroup

	q, err := asynqqueue.New(asynqqueue.Config{Addr: r.Addr, Concurrency: benchConcurrency, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	q.Start(context.Background(), func(ctx context.Context, d *queue.Delivery) error { wg.Done(); return nil })
	ours := drain(b, b.N, func(int) error {
		return q.Enqueue(context.Background(), &queue.Message{ID: uuid.NewString(), Type: "noop"})
	}, &wg)
	q.Stop(context.Background())

	opt := asynq.RedisClientOpt{Addr: r.Addr}
	cl := asynq.NewClient(opt)
	defer cl.Close()
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: benchConcurrency, Queues: queue.DefaultWeights,
		TaskCheckInterval: 5 * time.Millisecond, LogLevel: asynq.ErrorLevel})
	srv.Start(asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error { wg.Done(); return nil }))
	defer srv.Shutdown()
	payload, _ := json.Marshal(map[string]string{"id": "x"})
	bare := drain(b, b.N, func(int) error {
		_, err := cl.Enqueue(asynq.NewTask("noop", payload), asynq.TaskID(uuid.NewString()), asynq.Queue("default"))
		return err
	}, &wg)

	b.ReportMetric(ours, "ours-msg/s")
	b.ReportMetric(bare, "bare-msg/s")
	b.ReportMetric(ours/bare, "ratio")
	b.Logf("throughput: asynqqueue %.0f msg/s, bare asynq %.0f msg/s, ratio %.2f (n=%d each)", ours, bare, ours/bare, b.N)
}

// BenchmarkPickup measures enqueue → handler start, one message at a time,
// with the default 5ms Redis poll.
func BenchmarkPickup(b *testing.B) {
	r := testbin.StartRedis(b)
	q, err := asynqqueue.New(asynqqueue.Config{Addr: r.Addr, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	started := make(chan time.Time, 1)
	q.Start(context.Background(), func(ctx context.Context, d *queue.Delivery) error { started <- time.Now(); return nil })
	defer q.Stop(context.Background())
	lat := make([]time.Duration, 0, b.N)
	for range b.N {
		t0 := time.Now()
		if err := q.Enqueue(context.Background(), &queue.Message{ID: uuid.NewString(), Type: "bench"}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, (<-started).Sub(t0))
		time.Sleep(time.Duration(len(lat)%7) * time.Millisecond) // desynchronise from the poll tick
	}
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.Logf("asynq pickup latency: p50 %s p99 %s (n=%d)", p50, p99, len(lat))
}

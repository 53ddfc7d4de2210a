package asynqqueue_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/queue/asynqqueue"
	"github.com/aetherium/aetherium/internal/queue/queuetest"
	"github.com/aetherium/aetherium/internal/testbin"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestConformance(t *testing.T) {
	t.Parallel()
	queuetest.Run(t, func(t *testing.T) queuetest.Opener {
		r := testbin.StartRedis(t)
		return func(t *testing.T, workerID string) queue.Queue {
			q, err := asynqqueue.New(asynqqueue.Config{Addr: r.Addr, WorkerID: workerID, Concurrency: queuetest.Concurrency, Logger: quiet, ShutdownTimeout: 200 * 1e6})
			if err != nil {
				t.Fatal(err)
			}
			return q
		}
	})
}

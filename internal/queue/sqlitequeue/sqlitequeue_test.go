package sqlitequeue_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/queue/queuetest"
	"github.com/aetherium/aetherium/internal/queue/sqlitequeue"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestConformance(t *testing.T) {
	t.Parallel()
	queuetest.Run(t, func(t *testing.T) queuetest.Opener {
		path := filepath.Join(t.TempDir(), "queue.db")
		return func(t *testing.T, workerID string) queue.Queue {
			q, err := sqlitequeue.New(context.Background(), sqlitequeue.Config{Path: path, WorkerID: workerID, Concurrency: queuetest.Concurrency, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			return q
		}
	})
}

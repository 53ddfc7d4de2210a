package sqlstore

import (
	"context"

	"github.com/aetherium/aetherium/internal/store"
)

const workerColumns = `id, address, runtime, capacity, started_at, heartbeat_at`

func scanWorker(row interface{ Scan(...any) error }) (*store.Worker, error) {
	var w store.Worker
	var started, hb int64
	if err := row.Scan(&w.ID, &w.Address, &w.Runtime, &w.Capacity, &started, &hb); err != nil {
		return nil, err
	}
	w.StartedAt, w.HeartbeatAt = fromMicros(started), fromMicros(hb)
	return &w, nil
}

// WorkerUpsert implements store.Store.
func (s *Store) WorkerUpsert(ctx context.Context, p *store.WorkerUpsertParams) (*store.Worker, error) {
	t := now()
	w, err := scanWorker(s.db.QueryRowContext(ctx, `INSERT INTO workers (id, address, runtime, capacity, started_at, heartbeat_at)
		VALUES (?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET address = excluded.address, runtime = excluded.runtime,
		capacity = excluded.capacity, heartbeat_at = excluded.heartbeat_at RETURNING `+workerColumns,
		p.ID, p.Address, p.Runtime, p.Capacity, t, t))
	return w, s.mapErr(err, "worker "+p.ID)
}

// WorkerList implements store.Store.
func (s *Store) WorkerList(ctx context.Context) ([]*store.Worker, error) {
	return queryAll(ctx, s, "list workers", scanWorker, `SELECT `+workerColumns+` FROM workers ORDER BY id`)
}

// WorkerLoad implements store.Store.
func (s *Store) WorkerLoad(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT worker_id, COUNT(*) FROM vms
		WHERE status NOT IN ('deleted', 'failed') AND worker_id <> '' GROUP BY worker_id`)
	if err != nil {
		return nil, s.mapErr(err, "worker load")
	}
	defer rows.Close()
	load := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, s.mapErr(err, "worker load")
		}
		load[id] = n
	}
	return load, s.mapErr(rows.Err(), "worker load")
}

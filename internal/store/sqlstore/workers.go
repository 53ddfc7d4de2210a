package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
)

const workerColumns = `id, address, runtime, capacity, vcpus, memory_mb, started_at, heartbeat_at`

func scanWorker(row interface{ Scan(...any) error }) (*store.Worker, error) {
	var w store.Worker
	var started, hb int64
	if err := row.Scan(&w.ID, &w.Address, &w.Runtime, &w.Capacity, &w.VCPUs, &w.MemoryMB, &started, &hb); err != nil {
		return nil, err
	}
	w.StartedAt, w.HeartbeatAt = fromMicros(started), fromMicros(hb)
	return &w, nil
}

// WorkerUpsert implements store.Store.
func (s *Store) WorkerUpsert(ctx context.Context, p *store.WorkerUpsertParams) (*store.Worker, error) {
	t := now()
	w, err := scanWorker(s.db.QueryRowContext(ctx, `INSERT INTO workers (id, address, runtime, capacity, vcpus, memory_mb,
		started_at, heartbeat_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET address = excluded.address,
		runtime = excluded.runtime, capacity = excluded.capacity, vcpus = excluded.vcpus, memory_mb = excluded.memory_mb,
		heartbeat_at = excluded.heartbeat_at RETURNING `+workerColumns,
		p.ID, p.Address, p.Runtime, p.Capacity, p.VCPUs, p.MemoryMB, t, t))
	return w, s.mapErr(err, "worker "+p.ID)
}

// WorkerList implements store.Store.
func (s *Store) WorkerList(ctx context.Context) ([]*store.Worker, error) {
	return queryAll(ctx, s, "list workers", scanWorker, `SELECT `+workerColumns+` FROM workers ORDER BY id`)
}

// holdsResources selects the sandboxes that count against their worker.
const holdsResources = `status NOT IN ('deleted', 'failed') AND worker_id <> ''`

// WorkerLoad implements store.Store.
func (s *Store) WorkerLoad(ctx context.Context) (map[string]store.Load, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT worker_id, COUNT(*), COALESCE(SUM(vcpus), 0), COALESCE(SUM(memory_mb), 0)
		FROM vms WHERE `+holdsResources+` GROUP BY worker_id`)
	if err != nil {
		return nil, s.mapErr(err, "worker load")
	}
	defer rows.Close()
	load := map[string]store.Load{}
	for rows.Next() {
		var id string
		var l store.Load
		if err := rows.Scan(&id, &l.Sandboxes, &l.VCPUs, &l.MemoryMB); err != nil {
			return nil, s.mapErr(err, "worker load")
		}
		load[id] = l
	}
	return load, s.mapErr(rows.Err(), "worker load")
}

// checkWorkerRoom refuses a sandbox placed on a worker without room for
// it. It runs inside the inserting transaction, after locking the worker's
// row, so concurrent creates cannot overshoot the worker's budget.
func (s *Store) checkWorkerRoom(ctx context.Context, t tx, vm *store.VMInsertParams) error {
	w, err := scanWorker(t.QueryRowContext(ctx, `SELECT `+workerColumns+` FROM workers WHERE id = ?`+t.d.ForUpdate, vm.WorkerID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil // not registered (tests, or a worker starting): placement decided
	}
	if err != nil {
		return s.mapErr(err, "worker "+vm.WorkerID)
	}
	var l store.Load
	err = t.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(vcpus), 0), COALESCE(SUM(memory_mb), 0) FROM vms
		WHERE worker_id = ? AND `+holdsResources, vm.WorkerID).Scan(&l.Sandboxes, &l.VCPUs, &l.MemoryMB)
	if err != nil {
		return s.mapErr(err, "worker load")
	}
	if ok, why := w.Room(l, vm.VCPUs, vm.MemoryMB); !ok {
		return errdefs.Unavailable("worker %s has no room for another sandbox (%s); delete some or add a worker", w.ID, why)
	}
	return nil
}

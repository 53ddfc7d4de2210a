package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/store/sqlite"
	"github.com/aetherium/aetherium/internal/store/sqlstore"
)

// BenchmarkConcurrentExecWrites is what the store does for 32 concurrent
// execs: each writes its start marker, its durable finish and its audit
// entry (synchronous=FULL, as aetherd by default). It compares, in the
// same run and alternating, the store as aetherd opens it (writes take
// turns on a lock in the process, and durable writes waiting together are
// committed together: Dialect.SerializeWrites and GroupCommit), the same
// with turns but a commit per write, and the store whose writers meet only
// in SQLite (its busy handler sleeps 1, 2, 5 … 100 ms between tries; the
// store before both). Reported: p50 / p99 of one exec's three writes, and
// execs/s.
func BenchmarkConcurrentExecWrites(b *testing.B) {
	const clients, perClient = 32, 10
	variants := []struct {
		name             string
		serialize, group bool
	}{{"group-commit", true, true}, {"turns", true, false}, {"busy-handler", false, false}}
	stores := make([]*benchExecStore, len(variants))
	for i, v := range variants {
		d := sqlite.Dialect
		d.SerializeWrites, d.GroupCommit = v.serialize, v.group
		stores[i] = benchStore(b, d)
	}
	lat := make([][]time.Duration, len(variants))
	took := make([]time.Duration, len(variants))
	for b.Loop() {
		for i, s := range stores {
			d, l := s.run(b, clients, perClient)
			took[i] += d
			lat[i] = append(lat[i], l...)
		}
	}
	for i, v := range variants {
		name := v.name
		slices.Sort(lat[i])
		p50, p99 := lat[i][len(lat[i])/2], lat[i][len(lat[i])*99/100]
		perSec := float64(len(lat[i])) / took[i].Seconds()
		b.ReportMetric(float64(p50.Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, name+"-p99-ms")
		b.ReportMetric(perSec, name+"-execs/s")
		b.Logf("%d concurrent execs' store writes, %s: p50 %v p99 %v, %.0f execs/s (n=%d)", clients, name, p50, p99, perSec, len(lat[i]))
	}
}

type benchExecStore struct {
	s      *sqlstore.Store
	vm     *store.VM
	audits sync.WaitGroup
}

// BenchmarkExecStoreWork is the store's part of one exec, one at a time:
// the sandbox lookup by ID, the start marker, the durable finish and the
// audit entry (synchronous=FULL). It compares, in the same run and
// alternating, the store as aetherd opens it (statements kept prepared by
// its connections: OpenDB) with the same store over the bare driver,
// which parses every statement anew. The audit entry is written as aetherd's auditor does, after the
// exec and waited for by nobody. Reported: p50 / p99 of one exec's store
// work (lookup, marker, finish), and the process's CPU time (user +
// system) per exec, audit entry included.
func BenchmarkExecStoreWork(b *testing.B) {
	const perRound = 50
	variants := []struct {
		name    string
		prepare bool
	}{{"prepared", true}, {"unprepared", false}}
	stores := make([]*benchExecStore, len(variants))
	for i, v := range variants {
		open := sqlite.OpenDB
		if !v.prepare {
			open = sqlite.OpenBare
		}
		stores[i] = benchStoreOpen(b, sqlite.Dialect, open)
	}
	lat := make([][]time.Duration, len(variants))
	cpu := make([]time.Duration, len(variants))
	for b.Loop() {
		for i, s := range stores {
			c0 := cpuTime(b)
			for range perRound {
				t0 := time.Now()
				s.exec(b)
				lat[i] = append(lat[i], time.Since(t0))
			}
			s.audits.Wait()
			cpu[i] += cpuTime(b) - c0
		}
	}
	for i, v := range variants {
		slices.Sort(lat[i])
		p50, p99 := lat[i][len(lat[i])/2], lat[i][len(lat[i])*99/100]
		perExec := cpu[i] / time.Duration(len(lat[i]))
		b.ReportMetric(float64(p50.Microseconds())/1000, v.name+"-p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, v.name+"-p99-ms")
		b.ReportMetric(float64(perExec.Microseconds()), v.name+"-cpu-us/exec")
		b.Logf("one exec's store work, %s: p50 %v p99 %v, CPU %v per exec (n=%d)", v.name, p50, p99, perExec, len(lat[i]))
	}
}

// cpuTime is the CPU time (user + system) this process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// exec does the store work of one exec of `true`.
func (bs *benchExecStore) exec(b *testing.B) {
	ctx := context.Background()
	vm, err := bs.s.VMGet(ctx, &store.VMGetParams{ProjectID: bs.vm.ProjectID, IDOrName: bs.vm.ID})
	if err != nil {
		b.Fatal(err)
	}
	e, err := bs.s.ExecutionInsert(ctx, &store.ExecutionInsertParams{ProjectID: vm.ProjectID, VMID: vm.ID, Command: "true"})
	if err != nil {
		b.Fatal(err)
	}
	code := 0
	if _, err := bs.s.ExecutionFinish(ctx, &store.ExecutionFinishParams{ID: e.ID, ExitCode: &code}); err != nil {
		b.Fatal(err)
	}
	bs.audits.Go(func() { // as aetherd's auditor: after the answer, nobody waiting
		if err := bs.s.AuditInsert(ctx, &store.AuditInsertParams{KeyPrefix: "ae_bench", ProjectID: vm.ProjectID,
			Action: "POST /api/v1/vms/{id}/exec", Object: vm.ID, Status: 200}); err != nil {
			b.Error(err)
		}
	})
}

// benchStore opens a migrated store in a temp dir with dialect d, holding
// one sandbox.
func benchStore(b *testing.B, d sqlstore.Dialect) *benchExecStore {
	return benchStoreOpen(b, d, sqlite.OpenDB)
}

// benchStoreOpen is benchStore over databases opened by open.
func benchStoreOpen(b *testing.B, d sqlstore.Dialect, open func(path, sync string) (*sql.DB, error)) *benchExecStore {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "aether.db")
	s, err := sqlite.Open(ctx, path, sqlite.SyncFull)
	if err != nil {
		b.Fatal(err)
	}
	s.Close()
	db, err := open(path, sqlite.SyncFull)
	if err != nil {
		b.Fatal(err)
	}
	marker, err := open(path, sqlite.SyncNormal)
	if err != nil {
		b.Fatal(err)
	}
	s = sqlstore.New(db, d, marker)
	b.Cleanup(func() { s.Close() })
	id := uuid.NewString()
	if _, err := s.TaskInsert(ctx, &store.TaskInsertParams{ProjectID: store.DefaultProjectID, Type: "vm:create", Priority: "high",
		VM: &store.VMInsertParams{ID: id, Name: "bench", Image: "img", Runtime: "docker", VCPUs: 1, MemoryMB: 512}}); err != nil {
		b.Fatal(err)
	}
	vm, err := s.VMGet(ctx, &store.VMGetParams{ProjectID: store.DefaultProjectID, IDOrName: id})
	if err != nil {
		b.Fatal(err)
	}
	return &benchExecStore{s: s, vm: vm}
}

// run has clients goroutines write perClient execs each and returns the
// time it took and each exec's latency.
func (bs *benchExecStore) run(b *testing.B, clients, perClient int) (time.Duration, []time.Duration) {
	ctx := context.Background()
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			for i := range perClient {
				t0 := time.Now()
				e, err := bs.s.ExecutionInsert(ctx, &store.ExecutionInsertParams{ProjectID: bs.vm.ProjectID, VMID: bs.vm.ID, Command: "true"})
				if err != nil {
					b.Error(err)
					return
				}
				code := 0
				if _, err := bs.s.ExecutionFinish(ctx, &store.ExecutionFinishParams{ID: e.ID, ExitCode: &code}); err != nil {
					b.Error(err)
					return
				}
				if err := bs.s.AuditInsert(ctx, &store.AuditInsertParams{KeyPrefix: "ae_bench", ProjectID: bs.vm.ProjectID,
					Action: "POST /api/v1/vms/{id}/exec", Object: fmt.Sprint(c, i), Status: 200}); err != nil {
					b.Error(err)
					return
				}
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return time.Since(start), lat
}

package e2e_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/store"
)

// modeConfig lifts the create and exec rate limits, so the runs measure the
// deployment, not the limiter.
const modeConfig = "api:\n  rate_limits:\n    create: {per_second: 0}\n    exec: {per_second: 0}\n"

// BenchmarkModeThroughput is issue 13's distributed goal: creates/s and
// execs/s of a distributed deployment (1 api process + 2 workers on
// PostgreSQL + Redis) next to an embedded one (one process, SQLite), in the
// same run. Each iteration and each mode: 20 sandboxes created by 10
// submitters, timed from the first request until every create task has
// succeeded; then 16 clients exec `true` round robin over those sandboxes
// for 20 s (AETHER_BENCH_LOAD_DURATION overrides); then the sandboxes are
// deleted (not timed).
func BenchmarkModeThroughput(b *testing.B) {
	dur := loadDuration(b, 20*time.Second)
	emb := newEnv(b)
	emb.proc = emb.add("--runtime", "docker", "--config", writeConfig(b, modeConfig))
	emb.connect(emb.proc)
	emb.start()
	cl := newClusterTB(b, 2, modeConfig)
	modes := []struct {
		name string
		e    *testEnv
	}{{"embedded", emb}, {"distributed", cl.testEnv}}
	round := 0
	for b.Loop() {
		for _, m := range modes {
			ids, took := createMany(b, m.e, fmt.Sprintf("r%d-", round), 20, 10)
			perSec := float64(len(ids)) / took.Seconds()
			b.ReportMetric(perSec, m.name+"-creates/s")
			b.Logf("%s: 20 creates (10 submitters) until all running: %.2fs, %.2f creates/s", m.name, took.Seconds(), perSec)
			vegetaLoad(m.e.execTargets(ids...), 16, dur).report(b, m.name+": exec load, 16 clients over 20 sandboxes", m.name+"-")
			deleteMany(b, m.e, ids)
		}
		round++
	}
}

// createMany creates n sandboxes named prefix0… with submitters concurrent
// callers and returns their IDs and the time until every create task
// succeeded.
func createMany(b *testing.B, e *testEnv, prefix string, n, submitters int) ([]string, time.Duration) {
	ids := make([]string, n)
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	start := time.Now()
	var wg sync.WaitGroup
	for range submitters {
		wg.Go(func() {
			for i := range next {
				acc, err := e.c.CreateVM(b.Context(), &client.CreateVMRequest{Name: fmt.Sprintf("%s%d", prefix, i)})
				if err != nil {
					b.Error(err)
					return
				}
				if t, err := e.c.WaitTask(b.Context(), acc.TaskID, nil); err != nil || t.Status != store.TaskSucceeded {
					b.Errorf("create %d: %+v %v", i, t, err)
					return
				}
				ids[i] = acc.VMID
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return ids, time.Since(start)
}

// deleteMany deletes the sandboxes and waits for their delete tasks.
func deleteMany(b *testing.B, e *testEnv, ids []string) {
	for _, id := range ids {
		acc, err := e.c.DeleteVM(b.Context(), id)
		if err != nil {
			b.Fatal(err)
		}
		if t, err := e.c.WaitTask(b.Context(), acc.TaskID, nil); err != nil || t.Status != store.TaskSucceeded {
			b.Fatalf("delete %s: %+v %v", id, t, err)
		}
	}
}

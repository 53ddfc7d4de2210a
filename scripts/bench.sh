#!/usr/bin/env bash
# Runs the benchmarks reported in BENCHMARKS.md. Each compares Aetherium with
# the raw runtime (docker exec / docker run --rm) in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run '^$' -bench 'BenchmarkPickup' -benchtime 500x ./internal/queue/sqlitequeue 2>&1 | grep -E 'Benchmark|pickup'
go test -run '^$' -bench 'BenchmarkThroughput' -benchtime 3000x ./internal/queue/asynqqueue 2>&1 | grep -E 'throughput:' | tail -1
go test -run '^$' -bench 'BenchmarkPickup' -benchtime 1000x ./internal/queue/asynqqueue 2>&1 | grep -E 'pickup latency' | tail -1
go test -run '^$' -bench 'BenchmarkExecHop' -benchtime 300x ./internal/e2e 2>&1 | grep -E 'exec via' | tail -1
go test -run '^$' -bench 'BenchmarkExecRoundTrip' -benchtime 300x ./internal/e2e 2>&1 | grep -E '^Benchmark|exec true' | tail -2
AETHER_BENCH_STORE_SYNCHRONOUS=normal go test -run '^$' -bench 'BenchmarkExecRoundTrip' -benchtime 300x ./internal/e2e 2>&1 | grep -E '^Benchmark|exec true' | tail -2
go test -run '^$' -bench 'BenchmarkSDKExecRoundTrip' -benchtime 1x ./internal/e2e 2>&1 | grep -E '"lang"' | tail -2
go test -run '^$' -bench 'BenchmarkPtyEcho' -benchtime 300x ./internal/e2e 2>&1 | grep -E 'pty keystroke echo' | tail -1
go test -run '^$' -bench 'BenchmarkPortProxy' -benchtime 200x ./internal/e2e 2>&1 | grep -E 'via /ports/' | tail -2
go test -run '^$' -bench 'BenchmarkFirewallChange' -benchtime 200x ./internal/network 2>&1 | grep -E 'apply \+ remove' | tail -1
go test -run '^$' -bench 'BenchmarkExecAuth' -benchtime 5000x ./internal/api 2>&1 | grep -E 'round trip p50' | tail -1
go test -run '^$' -bench 'BenchmarkExecLoad' -benchtime 1x -timeout 15m ./internal/e2e 2>&1 | grep -E 'exec load' | tail -4
go test -run '^$' -bench 'BenchmarkConcurrentExecWrites' -benchtime 5x ./internal/store/sqlite 2>&1 | grep -E 'store writes' | tail -3
go test -run '^$' -bench 'BenchmarkModeThroughput' -benchtime 1x -timeout 20m ./internal/e2e 2>&1 | grep -E 'creates|exec load' | tail -4
go test -run '^$' -bench 'BenchmarkEventFanout' -benchtime 5x -timeout 30m ./internal/e2e 2>&1 | grep -E 'event fan-out' | tail -2
go test -run '^$' -bench 'BenchmarkCreateExecDelete' -benchtime 30x ./internal/e2e 2>&1 | grep -E '^Benchmark|create\+exec' | tail -3
go test -run '^$' -bench 'BenchmarkCreateMany' -benchtime 1x -timeout 30m ./internal/e2e 2>&1 | grep -E '^Benchmark|creates|  ' | tail -20
go test -run '^$' -bench 'BenchmarkDensity' -benchtime 1x -timeout 80m ./internal/e2e 2>&1 | grep -E '^Benchmark|  ' | tail -12
go test -run '^$' -bench 'BenchmarkPoolCreate' -benchtime 20x ./internal/e2e 2>&1 | grep -E 'pool create' | tail -1
go test -run '^$' -bench 'BenchmarkStartupWithHangingKVM' -benchtime 10x ./internal/e2e 2>&1 | grep -E 'fresh start' | tail -1
go test -run '^$' -bench 'BenchmarkTemplateVsInstall' -benchtime 3x ./internal/e2e 2>&1 | grep -E 'from template' | tail -1
AETHER_TEST_QEMU=1 go test -run '^$' -bench 'BenchmarkBoot' -benchtime 3x ./internal/sandbox/qemu 2>&1 | grep -E 'boot \(TCG\)' | tail -1
AETHER_TEST_QEMU=1 go test -run '^$' -bench 'BenchmarkIdleMemory' -benchtime 3x ./internal/sandbox/qemu 2>&1 | grep -E 'idle microVM' | tail -1
AETHER_TEST_QEMU=1 go test -run '^$' -bench 'BenchmarkMicroVMPoolCreate' -benchtime 3x ./internal/e2e 2>&1 | grep -E 'microVM \(TCG\) create' | tail -1
go test -run '^$' -bench 'BenchmarkIngest' -benchtime 2s ./internal/logs/sqllog 2>&1 | grep -E '^Benchmark'
go test -run '^$' -bench 'BenchmarkQuery' -benchtime 200x -timeout 30m ./internal/logs/sqllog 2>&1 | grep -E '^Benchmark'
go test -run '^$' -bench 'BenchmarkPush' -benchtime 20x ./internal/logs/loki 2>&1 | grep -E '^Benchmark'
go test -run '^$' -bench 'BenchmarkExecLogIngest' -benchtime 3x -timeout 20m ./internal/e2e 2>&1 | grep -E '^Benchmark|lines' | tail -4
go test -run '^$' -bench 'BenchmarkExecLogOverhead' -benchtime 300x ./internal/e2e 2>&1 | grep -E '^Benchmark|logging on vs off' | tail -2
# Idle cost of an embedded aetherd (queue polling, heartbeats, reconciler).
make -s build
dir=$(mktemp -d)
./bin/aetherd --data-dir "$dir" --listen 127.0.0.1:0 >/dev/null 2>&1 &
pid=$!
sleep 3
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
sleep 30
t2=$(awk '{print $14+$15}' /proc/$pid/stat)
echo "idle aetherd: $(( (t2 - t1) * 10 )) ms CPU per 30 s, RSS $(awk '/VmRSS/{print $2, $3}' /proc/$pid/status)"
kill $pid; wait $pid 2>/dev/null || true; rm -rf "$dir"

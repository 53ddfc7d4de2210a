#!/usr/bin/env bash
# Runs the benchmarks reported in BENCHMARKS.md. Each compares Aetherium with
# the raw runtime (docker exec / docker run --rm) in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run '^$' -bench 'BenchmarkPickup' -benchtime 500x ./internal/queue/sqlitequeue 2>&1 | grep -E 'Benchmark|pickup'
go test -run '^$' -bench 'BenchmarkExecRoundTrip' -benchtime 300x ./internal/e2e 2>&1 | grep -E '^Benchmark|exec true' | tail -2
go test -run '^$' -bench 'BenchmarkCreateExecDelete' -benchtime 30x ./internal/e2e 2>&1 | grep -E '^Benchmark|create\+exec' | tail -3

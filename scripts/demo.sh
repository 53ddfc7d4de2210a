#!/usr/bin/env bash
# The main job, end to end: starts aetherd in embedded mode (SQLite + embedded
# queue, Docker runtime), builds the default image if needed, creates a
# sandbox, runs a real command in it, shows the history and cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${AETHER_DATA_DIR:-./aether-data}
LISTEN=${AETHER_LISTEN:-127.0.0.1:8080}
export AETHER_SERVER="http://$LISTEN"
mkdir -p "$DATA"

./bin/aetherd --data-dir "$DATA" --listen "$LISTEN" >"$DATA/aetherd.log" 2>&1 &
AETHERD=$!
trap 'kill $AETHERD 2>/dev/null; wait $AETHERD 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
	./bin/aether health >/dev/null 2>&1 && break
	kill -0 $AETHERD 2>/dev/null || { cat "$DATA/aetherd.log"; exit 1; }
	sleep 0.1
done
echo "== aetherd is up at $AETHER_SERVER (log: $DATA/aetherd.log)"

echo "== building the default image (cached after the first time)"
./bin/aether image build

NAME="demo-$(date +%s)"
echo "== creating sandbox $NAME"
./bin/aether vm create "$NAME" --vcpus 1 --memory 512

echo "== running a command in it"
./bin/aether exec "$NAME" -- sh -c 'echo "hello from $(hostname)"; . /etc/os-release; echo "$PRETTY_NAME, kernel $(uname -r)"; git --version'

echo "== its execution history"
./bin/aether executions "$NAME"

echo "== deleting it"
./bin/aether vm rm "$NAME"
echo "== done. Run it yourself: ./bin/aetherd  (then ./bin/aether --help)"

#!/usr/bin/env bash
# The main job, end to end: starts aetherd in embedded mode (SQLite + embedded
# queue, Docker runtime), builds the default image if needed, creates a
# sandbox, runs a real command in it, shows the history and cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${AETHER_DATA_DIR:-./aether-data}
LISTEN=${AETHER_LISTEN:-127.0.0.1:8080}
export AETHER_SERVER="http://$LISTEN"
# The CLI finds the bootstrap admin key aetherd writes to $DATA/admin.key.
export AETHER_DATA_DIR="$DATA"
mkdir -p "$DATA"

./bin/aetherd --data-dir "$DATA" --listen "$LISTEN" >"$DATA/aetherd.log" 2>&1 &
AETHERD=$!
trap 'kill $AETHERD 2>/dev/null; wait $AETHERD 2>/dev/null || true' EXIT

# Ready means /health answers 200. Give up after 60 s, or at once if aetherd
# exits, and show its log either way.
ready=0
for _ in $(seq 1 600); do
	if ./bin/aether health >/dev/null 2>&1; then
		ready=1
		break
	fi
	kill -0 "$AETHERD" 2>/dev/null || break
	sleep 0.1
done
if [ "$ready" != 1 ]; then
	echo "demo: aetherd did not become ready at $AETHER_SERVER; its log ($DATA/aetherd.log):" >&2
	cat "$DATA/aetherd.log" >&2
	exit 1
fi
echo "== aetherd is up at $AETHER_SERVER (log: $DATA/aetherd.log); its health, with the runtime it chose and why:"
./bin/aether health

echo "== building the default image (cached after the first time)"
./bin/aether image build

NAME="demo-$(date +%s)"
echo "== creating sandbox $NAME"
./bin/aether vm create "$NAME" --vcpus 1 --memory 512

echo "== running a command in it"
# shellcheck disable=SC2016 # expanded inside the sandbox, not here
./bin/aether exec "$NAME" -- sh -c 'echo "hello from $(hostname)"; . /etc/os-release; echo "$PRETTY_NAME, kernel $(uname -r)"; git --version'

echo "== its execution history"
./bin/aether executions "$NAME"

echo "== deleting it"
./bin/aether vm rm "$NAME"
echo "== done. Run it yourself: ./bin/aetherd  (then ./bin/aether --help)"

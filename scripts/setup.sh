#!/usr/bin/env bash
# Installs and starts what Aetherium and its tests need on a Debian machine:
# Docker Engine and mmdebstrap (embedded mode), PostgreSQL and Redis
# (distributed mode and its tests), QEMU with a Debian kernel and static
# busybox (microVMs), iproute2/iptables (microVM networking), nftables (the
# egress firewall of every runtime), gcc and libc6-dev (the static
# aether-waiter, the dormant agent's stand-in), util-linux's setpriv (QEMU), xz-utils
# (the Firecracker kernel), shellcheck and Node.js with the pinned Redocly CLI
# (make lint), python3-pytest and the TypeScript SDK's pinned tsc (the SDK
# suites), and Chromium (the dashboard's headless-browser test). Starts dockerd and
# PostgreSQL if they are not running and creates the test role and database.
# Redis is only installed: tests start their own redis-server processes.
# Idempotent; needs root (or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

command -v go >/dev/null || { echo "setup: Go 1.26+ is required (https://go.dev/doc/install)" >&2; exit 1; }

# need COMMAND PACKAGE: install PACKAGE unless COMMAND is on PATH.
missing=()
need() { command -v "$1" >/dev/null || missing+=("$2"); }
need dockerd docker.io
need mmdebstrap mmdebstrap
need pg_ctlcluster postgresql
need redis-server redis-server
need qemu-system-x86_64 qemu-system-x86
need qemu-img qemu-utils
need ip iproute2
need iptables iptables
need nft nftables
need setpriv util-linux
need xz xz-utils
need cc gcc
need shellcheck shellcheck
need node nodejs
need npm npm
need chromium chromium
ls /boot/vmlinuz-* >/dev/null 2>&1 || missing+=(linux-image-amd64)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
dpkg -s python3-pytest >/dev/null 2>&1 || missing+=(python3-pytest)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || dpkg -s libc6-dev >/dev/null 2>&1 || missing+=(libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

start_dockerd() {
	$SUDO docker info >/dev/null 2>&1 && return
	echo "setup: starting dockerd"
	if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
		$SUDO systemctl start docker
	else
		# Its own session: dockerd must outlive the shell (and process group)
		# that ran setup, or it dies when that job is ended.
		$SUDO setsid -f sh -c 'exec dockerd >>/var/log/aether-dockerd.log 2>&1 </dev/null'
	fi
	for _ in $(seq 1 60); do
		$SUDO docker info >/dev/null 2>&1 && return
		sleep 0.5
	done
	echo "setup: dockerd did not start; see /var/log/aether-dockerd.log" >&2
	exit 1
}

start_postgres() {
	pg_isready -q -h 127.0.0.1 2>/dev/null && return
	echo "setup: starting postgresql"
	local ver
	ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -1)
	$SUDO pg_ctlcluster "$ver" main start
	for _ in $(seq 1 60); do
		pg_isready -q -h 127.0.0.1 && return
		sleep 0.5
	done
	echo "setup: postgresql did not start (pg_ctlcluster $ver main start)" >&2
	exit 1
}

psql_su() { $SUDO runuser -u postgres -- psql -qtAX "$@"; }

# The tests' role and database (the distributed-mode tests make a schema each).
create_test_db() {
	if [ "$(psql_su -c "SELECT 1 FROM pg_roles WHERE rolname = 'aether'")" != 1 ]; then
		psql_su -c "CREATE ROLE aether LOGIN SUPERUSER PASSWORD 'aether'"
	fi
	if [ "$(psql_su -c "SELECT 1 FROM pg_database WHERE datname = 'aether_test'")" != 1 ]; then
		psql_su -c "CREATE DATABASE aether_test OWNER aether"
	fi
}

# The OpenAPI linter (make lint), pinned by its package-lock.json.
install_openapi_lint() {
	local dir=tools/openapi-lint
	[ -x "$dir/node_modules/.bin/redocly" ] && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ] && return
	echo "setup: installing the OpenAPI linter (npm ci in $dir)"
	npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null
}

# The TypeScript SDK's compiler and Node types (its tests), pinned by its package-lock.json.
install_sdk_typescript() {
	local dir=sdk/typescript
	[ -x "$dir/node_modules/.bin/tsc" ] && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ] && return
	echo "setup: installing the TypeScript SDK's build tools (npm ci in $dir)"
	npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null
}

start_dockerd
start_postgres
create_test_db
install_openapi_lint
install_sdk_typescript
echo "setup: docker $($SUDO docker version --format '{{.Server.Version}}'), mmdebstrap, postgresql ($(pg_isready -h 127.0.0.1)), redis-server, qemu, shellcheck ready"

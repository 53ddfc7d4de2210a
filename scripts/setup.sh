#!/usr/bin/env bash
# Installs and starts what Aetherium and its tests need on a Debian machine:
# Docker Engine and debootstrap (embedded mode), PostgreSQL and Redis
# (distributed mode and its tests), QEMU with a Debian kernel and static
# busybox (microVMs), iproute2/iptables (microVM networking), xz-utils. Starts dockerd and PostgreSQL if they are
# not running and creates the test role and database. Redis is only
# installed: tests start their own redis-server processes.
# Idempotent; needs root (or sudo).
set -euo pipefail

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

command -v go >/dev/null || { echo "setup: Go 1.26+ is required (https://go.dev/doc/install)" >&2; exit 1; }

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v pg_ctlcluster >/dev/null || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
# QEMU microVMs: the emulator, qemu-img, a Debian kernel and a static busybox for the initramfs.
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v qemu-img >/dev/null || need+=(qemu-utils)
ls /boot/vmlinuz-* >/dev/null 2>&1 || need+=(linux-image-amd64)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
# microVM networking (ip netns in tests, NAT) and the Firecracker kernel (xz-packed vmlinux).
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
command -v xz >/dev/null || need+=(xz-utils)
if [ ${#need[@]} -gt 0 ]; then
	echo "setup: installing ${need[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! $SUDO docker info >/dev/null 2>&1; then
	echo "setup: starting dockerd"
	if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
		$SUDO systemctl start docker
	else
		$SUDO sh -c 'nohup dockerd >/var/log/aether-dockerd.log 2>&1 &'
	fi
	for _ in $(seq 1 60); do
		$SUDO docker info >/dev/null 2>&1 && break
		sleep 0.5
	done
	$SUDO docker info >/dev/null 2>&1 || { if ! pg_isready -q -h 127.0.0.1 2>/dev/null; then
	echo "setup: starting postgresql"
	ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
	$SUDO pg_ctlcluster "$ver" main start
	for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 && break; sleep 0.5; done
fi
psql_su() { $SUDO runuser -u postgres -- psql -qtAX "$@"; }
if [ "$(psql_su -c "SELECT 1 FROM pg_roles WHERE rolname = 'aether'")" != 1 ]; then
	psql_su -c "CREATE ROLE aether LOGIN SUPERUSER PASSWORD 'aether'"
fi
if [ "$(psql_su -c "SELECT 1 FROM pg_database WHERE datname = 'aether_test'")" != 1 ]; then
	psql_su -c "CREATE DATABASE aether_test OWNER aether"
fi

echo "setup: dockerd did not start; see /var/log/aether-dockerd.log" >&2; exit 1; }
fi
if ! pg_isready -q -h 127.0.0.1 2>/dev/null; then
	echo "setup: starting postgresql"
	ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
	$SUDO pg_ctlcluster "$ver" main start
	for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 && break; sleep 0.5; done
fi
psql_su() { $SUDO runuser -u postgres -- psql -qtAX "$@"; }
if [ "$(psql_su -c "SELECT 1 FROM pg_roles WHERE rolname = 'aether'")" != 1 ]; then
	psql_su -c "CREATE ROLE aether LOGIN SUPERUSER PASSWORD 'aether'"
fi
if [ "$(psql_su -c "SELECT 1 FROM pg_database WHERE datname = 'aether_test'")" != 1 ]; then
	psql_su -c "CREATE DATABASE aether_test OWNER aether"
fi

echo "setup: docker $(docker version --format '{{.Server.Version}}'), debootstrap, postgresql ($(pg_isready -h 127.0.0.1)), redis-server ready"

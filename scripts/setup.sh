#!/usr/bin/env bash
# Installs and starts what Aetherium needs on a Debian machine: Docker Engine
# (started here if it is not running) and debootstrap for image builds.
# Idempotent; needs root (or sudo).
set -euo pipefail

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

command -v go >/dev/null || { echo "setup: Go 1.26+ is required (https://go.dev/doc/install)" >&2; exit 1; }

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
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
	$SUDO docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start; see /var/log/aether-dockerd.log" >&2; exit 1; }
fi
echo "setup: docker $(docker version --format '{{.Server.Version}}'), debootstrap ready"

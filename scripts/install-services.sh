#!/usr/bin/env bash
# Install the Prometheus and Alertmanager binaries FinMon's rule tests and integration tests use.
# Idempotent: does nothing when promtool, prometheus and an alertmanager binary are already on PATH.
# Runs as root on Debian/Ubuntu. The packages' service scripts are not started (containers have no
# systemd; a policy-rc.d that denies starts keeps dpkg from trying).
set -euo pipefail

have_all() {
  command -v promtool >/dev/null 2>&1 \
    && command -v prometheus >/dev/null 2>&1 \
    && { command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1; }
}

if have_all; then
  echo "install-services: promtool, prometheus and alertmanager already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-services: must run as root to apt-get install prometheus prometheus-alertmanager" >&2
  exit 1
fi

policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends prometheus prometheus-alertmanager

if ! have_all; then
  echo "install-services: packages installed but binaries not found on PATH" >&2
  exit 1
fi
echo "install-services: installed $(promtool --version 2>&1 | head -n1)"

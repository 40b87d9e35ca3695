#!/usr/bin/env bash
# System packages the test suite uses, from Debian: PostgreSQL (the registry's production database),
# Chromium + ChromeDriver (report and clerk-page browser tests), and Docker (docker.io) with mmdebstrap for
# the docker tier (the image built for real on a base made from Debian packages). Idempotent; skipped when
# not root.
set -euo pipefail
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v dockerd >/dev/null || need+=(docker.io)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "[setup] missing system packages: ${need[*]} (apt-get install them; the tests that need them will skip)" >&2
  exit 0
fi
echo "[setup] apt-get install ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null

#!/usr/bin/env bash
# The compose stack's PostgreSQL where no registry is reachable: prints the image reference it made or found.
#   scripts/postgres-image.sh   → hms-postgres:15-bookworm-<hash>
set -euo pipefail
cd "$(dirname "$0")/.."
base=$(bash scripts/base-image.sh hms-postgres-base postgresql-15,ca-certificates)
ref="hms-postgres:15-$(cat deploy/postgres/Dockerfile deploy/postgres/entrypoint.sh | sha256sum | cut -c1-8)-${base##*:}"
if ! docker image inspect "$ref" >/dev/null 2>&1; then
  docker build -q --build-arg BASE_IMAGE="$base" -t "$ref" deploy/postgres >/dev/null
  echo "[image] $ref built on $base" >&2
fi
echo "$ref"

#!/usr/bin/env bash
# The broker of the compose stack's `celery` profile, from Debian's packages (no image registry needed):
# prints the image reference it made or found.
#   scripts/redis-image.sh   → hms-redis:7-<hash of deploy/redis>-bookworm-<hash of the base's packages>
# The tag carries the hashes of what goes in, so a second call finds the image and returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."
base=$(bash scripts/base-image.sh hms-redis-base redis-server,ca-certificates)
ref="hms-redis:7-$(cat deploy/redis/Dockerfile deploy/redis/entrypoint.sh | sha256sum | cut -c1-8)-${base##*:}"
if ! docker image inspect "$ref" >/dev/null 2>&1; then
  docker build -q --build-arg BASE_IMAGE="$base" -t "$ref" deploy/redis >/dev/null
  echo "[image] $ref built on $base" >&2
fi
echo "$ref"

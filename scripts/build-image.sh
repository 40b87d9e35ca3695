#!/usr/bin/env bash
# `make image`: the one image (Dockerfile) built for real.
#   IMAGE=hms:0.1.0 BASE_IMAGE=… scripts/build-image.sh
# 1. The base: BASE_IMAGE if given; else python:3.11-slim-bookworm when the engine has it or can pull it;
#    else a Debian bookworm base made from Debian's packages (scripts/base-image.sh), and it says so.
# 2. The wheelhouse, on the host: every wheel of requirements/runtime.lock and opa.lock (hashes checked), and
#    hms's own wheel. The host's pip has the CA bundle and proxy that reach PyPI; the build does not need them.
# 3. docker build with the wheelhouse in the build stage only (see the Dockerfile).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-hms:0.1.0}
PIP=${PIP:-.venv/bin/pip}
command -v docker >/dev/null && docker info >/dev/null 2>&1 || {
  echo "[image] no Docker engine answers (apt-get install docker.io; start dockerd)" >&2; exit 2; }
t0=$SECONDS
base=${BASE_IMAGE:-}
if [ -z "$base" ]; then
  if docker image inspect python:3.11-slim-bookworm >/dev/null 2>&1 \
     || timeout 60 docker pull -q python:3.11-slim-bookworm >/dev/null 2>&1; then
    base=python:3.11-slim-bookworm
  else
    base=$(bash scripts/base-image.sh)
    echo "[image] no image registry reachable: building on $base, made from Debian packages by scripts/base-image.sh"
  fi
fi
wheels=build/wheelhouse
mkdir -p "$wheels"
stamp=$(cat requirements/runtime.lock requirements/opa.lock | sha256sum | cut -c1-16)
if [ "$(cat "$wheels/.locks" 2>/dev/null)" != "$stamp" ]; then  # pip re-asks the index for every file: skip it
  "$PIP" download -q --only-binary=:all: --require-hashes -r requirements/runtime.lock -d "$wheels"
  "$PIP" download -q --only-binary=:all: --require-hashes --no-deps --ignore-requires-python \
    -r requirements/opa.lock -d "$wheels"
  echo "$stamp" >"$wheels/.locks"
fi
rm -rf build/hms
"$PIP" wheel -q --no-deps . -w build/hms
echo "[image] wheelhouse ready ($(ls "$wheels" | wc -l) wheels, $((SECONDS - t0)) s); docker build on $base"
docker build -q --build-arg BASE_IMAGE="$base" -t "$IMAGE" . >/dev/null
echo "[image] $IMAGE built in $((SECONDS - t0)) s on $base ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"

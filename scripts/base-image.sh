#!/usr/bin/env bash
# A Debian bookworm base image made from Debian's own packages, for machines that reach no image registry
# (docker.io/python:3.11-slim-bookworm is the default base where one is reachable; `make image` picks).
#   scripts/base-image.sh [NAME [PACKAGES]]   → prints the image reference it made or found, e.g.
#   hms-base:bookworm-1a2b3c4d (PACKAGES: a comma-separated Debian package list, default the hms base's)
# mmdebstrap builds the root filesystem (~90 s, from the apt mirror) and `docker import` makes it an image.
# The tag carries a hash of what goes in (suite, variant, packages), so a second call finds it and returns at
# once, and a change of the package list builds a new one. Python is Debian's python3.11 (3.11.2 in bookworm);
# the image's Python packages go into a venv (Debian marks the system site-packages externally managed).
set -euo pipefail
NAME=${1:-hms-base}
SUITE=bookworm
VARIANT=minbase
PACKAGES=${2:-python3.11,python3.11-venv,ca-certificates,passwd}
tag="$SUITE-$(printf '%s|%s|%s' "$SUITE" "$VARIANT" "$PACKAGES" | sha256sum | cut -c1-8)"
ref="$NAME:$tag"
if docker image inspect "$ref" >/dev/null 2>&1; then
  echo "$ref"
  exit 0
fi
command -v mmdebstrap >/dev/null || { echo "[image] mmdebstrap is missing: apt-get install mmdebstrap" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "[image] building $ref from Debian $SUITE packages with mmdebstrap ($PACKAGES)" >&2
t0=$SECONDS
# --aptopt: the base keeps no apt lists (an image layer rebuilt on every change of the mirror is waste).
mmdebstrap --quiet --variant="$VARIANT" --include="$PACKAGES" \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  "$SUITE" "$work/rootfs.tar" >&2
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  --message "Debian $SUITE ($VARIANT) + $PACKAGES, made by scripts/base-image.sh" \
  "$work/rootfs.tar" "$ref" >/dev/null
echo "[image] $ref made in $((SECONDS - t0)) s" >&2
echo "$ref"

#!/usr/bin/env bash
# A Docker engine for the docker test tier: Debian's docker.io (installed by scripts/system-deps.sh), its
# daemon started here when nothing runs it (no systemd on CI machines). Exit 0 when `docker info` answers,
# else 1 with the reason on stderr — the tier then skips and says so. Containers talk only on networks the
# tests create; tests reach them only through ports published on 127.0.0.1.
set -uo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
command -v dockerd >/dev/null || { echo "[docker] dockerd is not installed (apt-get install docker.io)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "[docker] dockerd needs root to start here" >&2; exit 1; }
log=${TMPDIR:-/tmp}/hms-dockerd.log
echo "[docker] starting dockerd (log: $log)" >&2
nohup dockerd >"$log" 2>&1 &
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && { echo "[docker] engine $(docker version -f '{{.Server.Version}}') ready" >&2; exit 0; }
  sleep 1
done
echo "[docker] dockerd did not answer in 60 s; last lines of $log:" >&2
tail -5 "$log" >&2
exit 1

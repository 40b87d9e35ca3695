#!/bin/bash
# Redis with a password and no persistence. The password goes into a config file only the redis user can
# read (mode 0600, under /run/redis), never onto the command line, where `ps` in any container of the
# namespace and the process list would show it. Extra arguments are passed to redis-server.
set -euo pipefail
: "${REDIS_PASSWORD:?set REDIS_PASSWORD (the compose file takes it from .env)}"
case "$REDIS_PASSWORD" in
  *[!A-Za-z0-9_-]*) echo "[redis] REDIS_PASSWORD must be URL-safe (A-Z a-z 0-9 _ -): it goes into the broker URL" >&2
                    exit 2 ;;
esac
conf=/run/redis/redis.conf
umask 077
cat >"$conf" <<CONF
bind * -::*
port 6379
protected-mode yes
requirepass $REDIS_PASSWORD
save ""
appendonly no
dir /var/lib/redis
loglevel notice
logfile ""
CONF
exec redis-server "$conf" "$@"

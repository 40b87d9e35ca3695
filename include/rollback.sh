#!/usr/bin/env bash
# Roll a protocol back to the version before, through `hms` (audited, atomic per environment).
#   rollback.sh PROTOCOL_ID ENV [ENV...]   one protocol, the given environments, in that order
#   rollback.sh --run RUN_ID               every deployment a pipeline run made
set -euo pipefail
HMS="${HMS_BIN:-hms}"
if [[ "${1:-}" == "--run" && $# -eq 2 ]]; then
  [[ "$2" =~ ^[A-Za-z0-9_.:+-]{1,250}$ ]] || { echo "rollback.sh: refusing run id" >&2; exit 2; }
  exec "$HMS" rule rollback --run "$2"
fi
[[ $# -ge 2 ]] || { echo "usage: rollback.sh PROTOCOL_ID ENV [ENV...] | --run RUN_ID" >&2; exit 2; }
id="$1"; shift
[[ "$id" =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] || { echo "rollback.sh: refusing protocol id" >&2; exit 2; }
for env in "$@"; do
  [[ "$env" =~ ^[a-z][a-z0-9-]{0,30}$ ]] || { echo "rollback.sh: refusing environment name" >&2; exit 2; }
  "$HMS" rule rollback "$id" --env "$env" --to previous
done

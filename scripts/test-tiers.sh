#!/usr/bin/env bash
# `make test`: the suite in tiers, each timed; then the shifted-clock tiers (the wall clock of every Python
# process — pytest, the CLI, decision services, the registry's timestamps — 400 days and 5 years ahead), so no
# test has an expiry date. Every tier runs even when one fails; the summary table ends the output and the exit
# code is the first failing tier's. SHIFTS="" skips the shifted tiers (make test-fast); ONLY_SHIFTED=1 runs
# only them (make test-shifted).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTEST=${PYTEST:-.venv/bin/pytest}
SHIFTS=${SHIFTS-"400d 5y"}
# What the shifted tiers run: every test that does not start a real Airflow, a browser or a minutes-long
# scenario (those take every time from the clock too, but three runs of them would not fit the time budget).
SHIFTED=(tests/unit tests/integration/test_rule_cli.py tests/integration/test_bundle_refs_and_records.py
         tests/integration/test_chaos_run.py tests/integration/test_kubernetes_mode_cli.py
         tests/integration/test_pod_specs.py tests/integration/test_seed_chapters.py)
SHIFTED=($(for t in "${SHIFTED[@]}"; do [ -e "$t" ] && echo "$t"; done))
# Left out of the shifted tiers: files of pure computation that never read a clock, a date or a time (property
# tests of the rule language over both backends, the Rego policies' own tests). A shift cannot change what they
# compute; they run in the unit tier. A file joins this list only if `grep -E 'clock|datetime|date|now\('`
# finds nothing in it.
CLOCK_FREE=(tests/unit/test_rule_backends.py tests/unit/test_entity_backends.py
            tests/unit/test_entity_subgroup_backends.py tests/unit/test_entity_nested_backends.py
            tests/unit/test_compliance_policies.py)
IGNORE_CLOCK_FREE=($(for t in "${CLOCK_FREE[@]}"; do echo "--ignore=$t"; done))
# Timed against the machine — chaos: replicas killed and restarted within a health budget over a few seconds;
# load: no answer from a version no longer in force, tens of milliseconds after a rollback (under another
# tier's CPU load the service's registry poll lags, measured: 6 stale answers in a 29 ms window). These run
# after each side-by-side part, alone, so another tier's load cannot fail them.
ALONE=(tests/integration/test_chaos_run.py tests/reliability/test_load.py)
ALONE_SHIFTED=($(for t in "${ALONE[@]}"; do [[ " ${SHIFTED[*]} " == *" $t "* ]] && echo "$t"; done))
BESIDE=($(for t in "${SHIFTED[@]}"; do [[ " ${ALONE[*]} " == *" $t "* ]] || echo "$t"; done))
IGNORE_ALONE=($(for t in "${ALONE[@]}"; do echo "--ignore=$t"; done))
rows=()
status=0
row() {  # name seconds exit-code: one line of the summary table; the first failing tier's code is the exit code
  local rc=$3
  [ "$rc" -eq 5 ] && rc=0  # pytest: no test collected in this tier (e.g. all of it skipped by marker)
  rows+=("$(printf '%-40s %6ss  %s' "$1" "$2" "$([ "$rc" -eq 0 ] && echo ok || echo "FAILED (exit $rc)")")")
  [ "$rc" -ne 0 ] && [ $status -eq 0 ] && status=$rc
  return 0
}
tier() {  # name command...: one tier in the foreground, its output as it comes
  local name=$1; shift
  local t0=$SECONDS
  echo "[test] ── tier: $name ──"
  "$@"
  row "$name" "$((SECONDS - t0))" $?
}
# Tiers side by side (this machine has two cores; every test has its own HMS_HOME, temporary directories, free
# ports and, on PostgreSQL, its own database, so two sessions do not meet). Each one's output is kept and
# printed whole, in the order they were started, once all have ended (finish_beside).
beside=()
start_beside() {  # name command...
  local name=$1; shift
  local log
  log=$(mktemp "${TMPDIR:-/tmp}/hms-tier.XXXXXX")
  ( t0=$SECONDS; "$@" >"$log" 2>&1; echo "$? $((SECONDS - t0))" >"$log.rc" ) &
  beside+=("$log:$name")
}
finish_beside() {
  wait
  local entry log name rc secs
  for entry in "${beside[@]}"; do
    log=${entry%%:*}; name=${entry#*:}
    echo "[test] ── tier: $name ──"
    cat "$log"
    read -r rc secs <"$log.rc" || { rc=1; secs=0; }
    row "$name" "$secs" "$rc"
    rm -f "$log" "$log.rc"
  done
  beside=()
}
if [ -z "${ONLY_SHIFTED:-}" ]; then
  # The image built for real and run (tests/docker), beside the unit tier: the build mostly waits on the disk
  # and the network, and the unit tier is one CPU-bound process. Skipped, saying why, where no Docker engine
  # starts.
  if bash scripts/docker-engine.sh; then
    start_beside "docker (beside unit)" "$PYTEST" -q -p no:cacheprovider -m docker tests/docker
  else
    echo "[test] ── tier: docker skipped: no Docker engine (see the line above) ──"
    rows+=("$(printf '%-40s %6s   %s' "docker" "-" "skipped: no Docker engine")")
  fi
  tier "unit" "$PYTEST" -q -p no:cacheprovider tests/unit
  finish_beside
  # Integration and reliability in two lanes of about equal length: the tests that start a real Airflow (most
  # of their time is waiting on its scheduler, a sensor's poke or an effective time) beside all the others.
  # Then the files timed against the machine, alone.
  INTEGRATION=(tests/integration tests/reliability "${IGNORE_ALONE[@]}")
  start_beside "integration + reliability: Airflow" "$PYTEST" -q -p no:cacheprovider --durations=25 \
    -m airflow "${INTEGRATION[@]}"
  start_beside "integration + reliability: the rest" "$PYTEST" -q -p no:cacheprovider --durations=25 \
    -m "not airflow" "${INTEGRATION[@]}"
  echo "[test] ── tiers: integration + reliability, two lanes side by side (output follows when both end) ──"
  finish_beside
  tier "integration: alone (timed against the machine)" "$PYTEST" -q -p no:cacheprovider "${ALONE[@]}"
fi
if [ -n "$SHIFTS" ]; then
  # The shifted tiers run side by side, one pytest per shift. Every Python process of a tier (pytest, each hms
  # command, decision services, chaos replicas) moves its wall clock by $shift through
  # tests/shifted_clock/sitecustomize.py (time-machine); see why there.
  shifted() {  # shift pytest-arguments...
    local shift=${1#+}; shift
    env HMS_TEST_CLOCK_SHIFT="$shift" PYTHONPATH="$PWD/tests/shifted_clock${PYTHONPATH:+:$PYTHONPATH}" \
      "$PYTEST" -q -p no:cacheprovider -m "not airflow and not browser and not slow" "$@"
  }
  t_all=$SECONDS
  for shift in $SHIFTS; do
    start_beside "shifted clock $shift" shifted "$shift" "${IGNORE_CLOCK_FREE[@]}" "${BESIDE[@]}"
  done
  echo "[test] ── tiers: shifted clock ${SHIFTS} (side by side; output follows when both end) ──"
  finish_beside
  for shift in $SHIFTS; do
    tier "shifted clock $shift: alone" shifted "$shift" "${ALONE_SHIFTED[@]}"
  done
  rows+=("$(printf '%-40s %6ss' "shifted tiers together (wall)" "$((SECONDS - t_all))")")
fi
echo
echo "[test] tier                                     time  result"
for r in "${rows[@]}"; do echo "[test] $r"; done
exit $status

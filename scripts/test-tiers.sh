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
            tests/unit/test_entity_subgroup_backends.py tests/unit/test_compliance_policies.py)
IGNORE_CLOCK_FREE=($(for t in "${CLOCK_FREE[@]}"; do echo "--ignore=$t"; done))
# Timed against the machine (chaos: replicas killed and restarted within a health budget over a few seconds):
# these run after the side-by-side part, one shift at a time, so the other tier's CPU load cannot fail them.
ALONE=(tests/integration/test_chaos_run.py)
BESIDE=($(for t in "${SHIFTED[@]}"; do [[ " ${ALONE[*]} " == *" $t "* ]] || echo "$t"; done))
rows=()
status=0
tier() {
  local name=$1; shift
  local t0=$SECONDS
  echo "[test] ── tier: $name ──"
  "$@"
  local rc=$?
  [ $rc -eq 5 ] && rc=0  # pytest: no test collected in this tier (e.g. all of it skipped by marker)
  rows+=("$(printf '%-34s %6ss  %s' "$name" "$((SECONDS - t0))" "$([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc)")")")
  [ $rc -ne 0 ] && [ $status -eq 0 ] && status=$rc
  return 0
}
if [ -z "${ONLY_SHIFTED:-}" ]; then
  # The image built for real and run (tests/docker), beside the unit tier: the build mostly waits on the disk
  # and the network, and the unit tier is one CPU-bound process on a two-core machine. Skipped, saying why,
  # where no Docker engine starts. Its output is printed whole after the unit tier's.
  docker_log=""
  if bash scripts/docker-engine.sh; then
    docker_log=$(mktemp "${TMPDIR:-/tmp}/hms-docker-tier.XXXXXX")
    ( t0=$SECONDS; "$PYTEST" -q -p no:cacheprovider -m docker tests/docker >"$docker_log" 2>&1
      echo "$? $((SECONDS - t0))" >"$docker_log.rc" ) &
    docker_pid=$!
  fi
  tier "unit" "$PYTEST" -q -p no:cacheprovider tests/unit
  if [ -n "$docker_log" ]; then
    wait "$docker_pid"
    echo "[test] ── tier: docker (ran beside the unit tier) ──"
    cat "$docker_log"
    read -r rc secs <"$docker_log.rc" || { rc=1; secs=0; }
    [ "$rc" -eq 5 ] && rc=0
    rows+=("$(printf '%-34s %6ss  %s' "docker (beside unit)" "$secs" "$([ "$rc" -eq 0 ] && echo ok || echo "FAILED (exit $rc)")")")
    [ "$rc" -ne 0 ] && [ $status -eq 0 ] && status=$rc
    rm -f "$docker_log" "$docker_log.rc"
  else
    echo "[test] ── tier: docker skipped: no Docker engine (see the line above) ──"
    rows+=("$(printf '%-34s %6s   %s' "docker" "-" "skipped: no Docker engine")")
  fi
  tier "integration + reliability" "$PYTEST" -q -p no:cacheprovider --durations=40 tests/integration tests/reliability
fi
if [ -n "$SHIFTS" ]; then
  # The shifted tiers run side by side, one pytest per shift (each is one CPU-bound process and this machine
  # has two cores; every test has its own HMS_HOME, temporary directories, free ports and, on PostgreSQL, its
  # own database, so two sessions do not meet). Each tier's output is printed whole once both have ended.
  t_all=$SECONDS
  shifted_logs=()
  for shift in $SHIFTS; do
    log=$(mktemp "${TMPDIR:-/tmp}/hms-shifted-${shift#+}.XXXXXX")
    shifted_logs+=("$shift:$log")
    (
      t0=$SECONDS
      # Every Python process of the tier (pytest, each hms command, decision services, chaos replicas) moves
      # its wall clock by $shift through tests/shifted_clock/sitecustomize.py (time-machine); see why there.
      env HMS_TEST_CLOCK_SHIFT="${shift#+}" PYTHONPATH="$PWD/tests/shifted_clock${PYTHONPATH:+:$PYTHONPATH}" \
        "$PYTEST" -q -p no:cacheprovider -m "not airflow and not browser and not slow" "${IGNORE_CLOCK_FREE[@]}" \
        "${BESIDE[@]}" >"$log" 2>&1
      echo "$? $((SECONDS - t0))" >"$log.rc"
    ) &
  done
  echo "[test] ── tiers: shifted clock ${SHIFTS} (side by side; output follows when both end) ──"
  wait
  for entry in "${shifted_logs[@]}"; do
    shift=${entry%%:*}; log=${entry#*:}
    echo "[test] ── tier: shifted clock $shift ──"
    cat "$log"
    read -r rc secs <"$log.rc" || { rc=1; secs=0; }
    [ "$rc" -eq 5 ] && rc=0
    t0=$SECONDS
    echo "[test]    … and alone: ${ALONE[*]}"
    env HMS_TEST_CLOCK_SHIFT="${shift#+}" PYTHONPATH="$PWD/tests/shifted_clock${PYTHONPATH:+:$PYTHONPATH}" \
      "$PYTEST" -q -p no:cacheprovider -m "not airflow and not browser and not slow" "${ALONE[@]}"
    rc_alone=$?
    [ $rc_alone -eq 5 ] && rc_alone=0
    [ "$rc" -eq 0 ] && rc=$rc_alone
    secs=$((secs + SECONDS - t0))
    rows+=("$(printf '%-34s %6ss  %s' "shifted clock $shift" "$secs" "$([ "$rc" -eq 0 ] && echo ok || echo "FAILED (exit $rc)")")")
    [ "$rc" -ne 0 ] && [ $status -eq 0 ] && status=$rc
    rm -f "$log" "$log.rc"
  done
  rows+=("$(printf '%-34s %6ss' "shifted tiers together (wall)" "$((SECONDS - t_all))")")
fi
echo
echo "[test] tier                               time  result"
for r in "${rows[@]}"; do echo "[test] $r"; done
exit $status

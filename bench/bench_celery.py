"""Celery scale-out (issue 19): three protocols' pipeline runs with 1 Celery worker, then with 3.

The compose stack's `celery` profile (CeleryExecutor, Redis) from the images `make image`,
scripts/postgres-image.sh and scripts/redis-image.sh made, under its own project name and free ports; removed
with its volumes at the end. One stack for both rounds: it starts with one worker, is scaled to three with
``up --scale airflow-worker=3`` between them. Each worker has ONE task slot (HMS_CELERY_CONCURRENCY=1), so the
rounds compare 1 slot with 3 on the same machine: what a worker adds here is a slot, not a CPU (the machine
has 2 cores); on a cluster each worker would bring its own.

Each round pushes a fresh version of each protocol (a bundle no environment has received: a second run of a
bundle already in prod is not the same work), triggers the three runs at once, and the clerks approve each as
it reaches their board. The figure is Airflow's own: first run start to last run end.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.containers import engine_answers, image
from bench.table import Row

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = ("wildfire-aid-2024", "chip-income-cap", "federal-eitc-2026")
WHAT = "3 protocols' runs at once, build → prod, 1 task slot per worker"


def run() -> list[Row]:
    why = engine_answers()
    if why is not None:
        return [Row("celery", WHAT, f"skipped: {why}", "1 worker ÷ 3 > 1.2×", True)]
    from tests.docker.parallel_runs import push_version, run_all, wall_seconds
    from tests.docker.stack import celery_stack

    hms_image = os.environ.get("HMS_TEST_IMAGE", "hms:0.1.0")
    image("build-image.sh", f"IMAGE={hms_image}")
    stack = celery_stack(Path(tempfile.mkdtemp(prefix="hms-bench-celery-")), hms_image,
                         image("postgres-image.sh"), image("redis-image.sh"), f"hms-bench-celery-{os.getpid()}")
    seconds: dict[int, float] = {}
    rows: list[Row] = []
    try:
        for round_no, workers in enumerate((1, 3), start=1):
            stack.up("--scale", f"airflow-worker={workers}")
            if round_no == 1:
                stack.apply_policy()
            bundles = {pid: push_version(stack, pid, 100 + round_no) for pid in PROTOCOLS}
            runs = run_all(stack, PROTOCOLS, bundles)
            failed = [r.run_id for r in runs if r.state != "success"]
            seconds[workers] = wall_seconds(runs)
            hosts = {t["hostname"] for r in runs for t in r.tasks if t["hostname"]}
            rows.append(Row("celery", f"{WHAT}: {workers} worker{'s' if workers > 1 else ''} "
                            f"({len(hosts)} ran tasks)", f"{seconds[workers]:.0f} s"
                            + (f" (FAILED: {', '.join(failed)})" if failed else ""), "—", not failed))
    finally:
        stack.down()
    ratio = seconds[1] / seconds[3]
    rows.append(Row("celery", "  1 worker ÷ 3 workers (wall time)", f"{ratio:.2f}×", "> 1.2×", ratio > 1.2))
    return rows

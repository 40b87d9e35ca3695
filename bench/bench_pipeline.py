"""The pipeline on a real Airflow (issue 6): wall time from triggering the DAG to prod live.

A real stack (devtools.airflow_stack: api-server, scheduler with LocalExecutor, dag-processor,
triggerer) on a throw-away registry; the bundle is approved before the run (the review step
then passes on its first look), the effective time is ``now`` and the preprod chaos window 5 s.
"Prod live" is read from the registry (polled every 0.1 s): the instant the prod deployment is in
force. One row per task follows, with its run time and how long it waited in the queue (from the
REST API), so the scheduling overhead is visible beside the work: the tasks themselves take a
few seconds; the rest is Airflow starting a process per task and the scheduler loop.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.table import Row

ROOT = Path(__file__).resolve().parents[1]
DAG = "policy_wildfire-aid-2024"
TARGET_S = 45.0


def _seconds(ti: dict[str, Any], start: str, end: str) -> float | None:
    if not ti.get(start) or not ti.get(end):
        return None
    parse = lambda v: datetime.fromisoformat(v.replace("Z", "+00:00"))  # noqa: E731
    return (parse(ti[end]) - parse(ti[start])).total_seconds()


def _run_to_prod(stack: Any, sha256: str, protocol_id: str, conf: dict[str, Any]) -> tuple[Any, ...]:
    """Trigger, poll the registry until ``sha256`` is in force in prod, wait for the run's end."""
    from hms import deployments
    from hms.registry.db import session_scope

    t0 = time.monotonic()
    run_id = stack.trigger(DAG, {"effective_at": "now", "chaos_window": "5s", **conf})
    live = None
    while live is None and time.monotonic() - t0 < 300:
        with session_scope(read_only=True) as s:
            d = deployments.in_force(s, "prod", protocol_id)
            if d is not None and d.bundle_sha256 == sha256:
                live = time.monotonic() - t0
        if stack.run_state(DAG, run_id) == "failed":
            break
        time.sleep(0.1)
    state = stack.wait_for_run(DAG, run_id, timeout=300)
    done = time.monotonic() - t0
    tis = sorted(stack.task_instances(DAG, run_id), key=lambda ti: ti.get("start_date") or "~")
    return live, state, done, tis


def _task_rows(tis: list[dict[str, Any]]) -> list[Row]:
    rows, work = [], 0.0
    for ti in tis:
        ran = ti.get("duration")
        queued = _seconds(ti, "queued_when", "start_date")
        work += ran or 0.0
        figure = "skipped" if ran is None else f"{ran:.2f} s" + (f" (queued {queued:.1f} s)" if queued else "")
        rows.append(Row("pipeline", f"    task {ti['task_id']} [{ti['state']}]", figure, "—", True))
    rows.append(Row("pipeline", "    sum of task run times (the rest: scheduling, process start)", f"{work:.1f} s",
                    "—", True))
    return rows


def run() -> list[Row]:
    home = Path(tempfile.mkdtemp(prefix="hms-bench-pipeline-"))
    os.environ["HMS_HOME"] = str(home / "hms")
    for name in ("HMS_DATABASE_URL", "HMS_ACTOR"):  # embedded registry; its commands act as the OS account
        os.environ.pop(name, None)
    from devtools.airflow_stack import AirflowStack
    from hms import protocol
    from hms.registry.db import reset_engines, upgrade
    from tests.conftest import WILDFIRE
    from tests.deploy_helpers import approve, record, variant, write_config

    reset_engines()
    upgrade()
    config = write_config(home / "pipeline.yml")  # the repository's settings without freeze windows
    os.environ["HMS_PIPELINE_CONFIG"] = str(config)
    b = record(protocol.load(WILDFIRE))
    approve(b)

    stack = AirflowStack(home / "airflow", env={"HMS_HOME": str(home / "hms"), "HMS_PIPELINE_CONFIG": str(config)})
    t = time.monotonic()
    stack.start()
    rows = [Row("pipeline", "real Airflow stack start (migrate, 4 components, DAGs parsed)",
                f"{time.monotonic() - t:.1f} s", "—", True)]
    try:
        first = _run_to_prod(stack, b.sha256, b.protocol.id, {})
        v4 = record(variant(4))  # the next version, on the now warm stack
        approve(v4)
        second = _run_to_prod(stack, v4.sha256, v4.protocol.id, {"sha256": v4.sha256})
    finally:
        stack.stop()
    for label, (live, state, done, tis) in (("first run after start, cold", first), ("next run, warm", second)):
        rows.append(Row("pipeline", f"trigger → prod live ({label}; effective now, chaos 5 s, approved)",
                        f"{live:.1f} s" if live is not None else f"never (run {state})", f"< {TARGET_S:.0f} s",
                        live is not None and live < TARGET_S))
        rows.append(Row("pipeline", f"  trigger → run {state} (verify + publish included)", f"{done:.1f} s", "—",
                        state == "success"))
        rows += _task_rows(tis)
    return rows

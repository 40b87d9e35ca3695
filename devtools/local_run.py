"""Run one pipeline DAG on this machine under Airflow's ``dag.test``, reporting tasks as they finish.

Used by ``hms ci run`` when no Airflow API server is running. ``dag.test`` runs the
tasks in this process (deferrable waits inline); a watcher thread reads the
metadata DB and prints one ``HMS-EVENT {json}`` line per task state worth
reporting, with the task's return value, so the caller can follow the run live
through stdout. Airflow's own logging goes to stderr.

Usage: ``python -m devtools.local_run DAG_ID '{"effective_at": "+10s"}'``
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

EVENT_PREFIX = "HMS-EVENT "  # the same marker hms.ci reads
REPORTED = ("success", "failed", "upstream_failed", "skipped", "deferred")


def _emit(msg: dict[str, Any]) -> None:
    # A leading newline: Airflow may have left a partial line on stdout, which would hide the marker.
    sys.stdout.write("\n" + EVENT_PREFIX + json.dumps(msg, default=str) + "\n")
    sys.stdout.flush()


def _poll(dag_id: str, started: float, seen: dict[str, str]) -> None:
    """Print the task states of this DAG's newest run that changed since the last poll."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as s:
        run = s.scalar(select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(1))
        if run is None or run.start_date is None or run.start_date.timestamp() < started - 1:
            return
        for ti in s.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id)
        ):
            state = str(ti.state.value if hasattr(ti.state, "value") else ti.state)
            if state not in REPORTED or seen.get(ti.task_id) == state:
                continue
            seen[ti.task_id] = state
            result = None
            if state == "success":
                row = s.scalar(
                    XComModel.get_many(run_id=run.run_id, key="return_value", task_ids=ti.task_id, dag_ids=dag_id)
                )
                if row is not None:
                    result = XComModel.deserialize_value(row)
            _emit({"task_id": ti.task_id, "state": state, "result": result, "run_id": run.run_id})


def main(argv: list[str]) -> int:
    dag_id = argv[0]
    conf = json.loads(argv[1]) if len(argv) > 1 else {}
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag()  # the DAGs folder from AIRFLOW__CORE__DAGS_FOLDER (no include_examples: TypeError on 3.3.x)
    if dag_id not in bag.dags:
        print(f"no DAG {dag_id!r}; import errors: {bag.import_errors}", file=sys.stderr)
        _emit({"run_state": "failed"})
        return 2
    # Import what the watcher needs before it starts: two threads importing Airflow's models at once deadlock
    # on the import lock.
    _poll(dag_id, float("inf"), {})
    started = time.time()
    seen: dict[str, str] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                _poll(dag_id, started, seen)
            except Exception as e:  # the DB may be busy (SQLite); the next poll catches up
                print(f"[local_run] poll: {e}", file=sys.stderr)
            done.wait(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run = bag.dags[dag_id].test(run_conf=conf)
    finally:
        done.set()
        watcher.join()
    _poll(dag_id, started, seen)
    state = str(getattr(run.state, "value", run.state))
    _emit({"run_state": state, "run_id": run.run_id})
    return 0 if state == "success" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Airflow listener: a policy run that ends failed — above all one *marked* failed by hand — is aborted in the core.

What Airflow 3.3 calls when ops marks a run failed (UI or ``PATCH /api/v2/dags/{id}/dagRuns/{run} {"state":
"failed"}``; the UI uses that endpoint): ``patch_dag_run_state`` in
``airflow/api_fastapi/core_api/services/public/dag_run.py`` sets the run and its unfinished tasks failed /
skipped (``set_dag_run_state_to_failed``) and then calls the listener hook ``on_dag_run_failed(dag_run, msg=
"Dag Run's state was manually set to `failed`.")`` in the api-server process. It does **not** run the DAG's
``on_failure_callback`` (those come only from the scheduler's own state changes), and the DAG's
``rollback`` task (``one_failed``) is skipped with the rest. The scheduler calls the same hook when a run
fails on its own (``DagRun.notify_dagrun_state_changed``), so both paths come here.

Thin on purpose: ``hms.abort.abort_run`` decides and records everything, the same call ``hms rule abort``
makes. A failure here is logged, never raised (a listener error must not break the api-server or the
scheduler). And it is not the only guard: a pending activation of a run that is not aborted in the registry
still needs its flip; and once aborted, no replica switches to it whatever Airflow does (hms.run_state).
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

DAG_PREFIX = "policy_"  # dag_factory.dag_id_for: only the pipeline DAGs deploy anything


def abort_failed_run(dag_id: str, run_id: str, msg: str) -> dict[str, Any] | None:
    """Abort ``run_id`` in the registry (and mirror it to Kubernetes in kubernetes mode); None if not a policy run."""
    if not dag_id.startswith(DAG_PREFIX):
        return None
    from hms.abort import abort_run
    from hms.identity import Principal
    from hms.pinned_policy import governing
    from hms.registry.db import session_scope

    config = governing()
    reason = f"Airflow: {dag_id} run {run_id} failed ({msg or 'no message'})"
    with session_scope() as s:
        result = abort_run(s, run_id, by=Principal.pipeline(run_id), reason=reason, config=config)
    if config.execution.mode == "kubernetes":
        from hms.targets.sync import Publisher, run_targets

        pub = Publisher.for_config(config)
        with session_scope(read_only=True) as s:
            pairs = run_targets(s, run_id, config.environment_names)
        for env, pid in pairs:
            if pub is not None:
                pub.publish(env, pid, actor="airflow", command="abort")
    return result.to_dict()


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    try:
        done = abort_failed_run(dag_run.dag_id, dag_run.run_id, msg)
    except Exception:  # the registry unreachable, a published run: say so where ops look, carry on
        log.exception("HMS: aborting failed run %s of %s did not complete", dag_run.run_id, dag_run.dag_id)
        return
    if done is not None:
        log.warning("HMS: run %s of %s aborted: undid %d deployment(s) in %s", dag_run.run_id, dag_run.dag_id,
                    len(done["undone"]), ", ".join(done["environments"]) or "no environment")

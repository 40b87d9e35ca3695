"""Where the Airflow UI shows a policy run and each of its steps' logs, for the clerk's card.

The core's bundle life (hms.web.bundle_life) says which run and which pipeline stage an event came from; only
this adapter knows the DAG's shape (dag_factory: ``policy_<id>``, its task ids) and the UI's routes
(``/dags/<dag>/runs/<run>`` and ``…/tasks/<task>``, whose default tab is the log), so it turns them into links.
"""

from __future__ import annotations

from urllib.parse import quote

from hms.pipeline_config import load_pipeline_config
from hms_operators.dag_factory import dag_id_for

_TASKS = {
    "build": "build.bundle",
    "test": "test.cases_and_simulation",
    "replay": "test.replay",
    "scan": "compliance.scan",
    "review": "review.approvals",
    "flip": "flip.wait_for_effective_time",
    "publish": "publish",
    "rollback": "rollback",
}


class AirflowRunLinks:
    """``hms.web.bundle_life.RunLinks`` for the Airflow UI this plugin runs in (same origin: paths, no host)."""

    def run(self, protocol_id: str, run_id: str) -> str:
        return f"/dags/{quote(dag_id_for(protocol_id), safe='')}/runs/{quote(run_id, safe='')}"

    def step(self, protocol_id: str, run_id: str, stage: str, environment: str | None) -> str | None:
        task = self.task_id(stage, environment)
        return f"{self.run(protocol_id, run_id)}/tasks/{quote(task, safe='')}" if task else None

    @staticmethod
    def task_id(stage: str, environment: str | None) -> str | None:
        if stage in _TASKS:
            return _TASKS[stage]
        config = load_pipeline_config()
        if stage == "chaos":
            return f"{config.chaos.environment}.chaos"
        last = config.environment_names[-1]
        if stage == "schedule" or (stage == "deploy" and environment == last):
            return f"{last}.schedule"  # the last environment is staged at its time, never deployed directly
        if stage == "deploy" and environment:
            return f"{environment}.deploy"
        return None  # "run": the run itself has no step

"""Intake: a new protocol version starts exactly one pipeline run of its DAG, per bundle hash.

Every minute the intake DAG records each file in include/protocols (``hms rule push``: a changed
file with a new version becomes a new bundle; unchanged files are "already known"), asks the
registry which newest bundles nothing has deployed yet (``hms.gates.intake_candidates``; bundles
pushed with ``hms rule push`` from elsewhere count too), drops those Airflow already has a run for,
and triggers ``policy_<id>`` with ``run_id = bundle-<sha256 prefix>`` (``hms.ci.run_id_for``: the id of a
bundle's *first* run) and ``conf {"sha256": …}``. That id is the intake's idempotency key: Airflow refuses a
second run with it, and the trigger task then ends *skipped* — so two intake runs racing, or a re-run, can
never start a bundle twice, and a bundle whose run failed is not retried every minute. A person runs it
again (trigger form's ``bundle``, or ``hms ci run --bundle``): that run gets an id of its own
(``bundle-<sha12>-<UTC stamp>`` from ``hms ci``), so nothing burns.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, BaseOperator

from hms.ci import run_id_for  # a bundle's first run id; `hms ci run` uses it too
from hms_operators.steps import run_hms


class FindNewBundlesOperator(BaseOperator):
    """Record the protocol files, then list the bundles no pipeline run has taken up yet.

    Returns ``expand_kwargs`` rows for TriggerDagRunOperator. A file that does not pack (bad input,
    or a changed file that kept its version number) is logged at ERROR and skipped; the others go on.

    :param files: protocol files to record (str paths)
    :param dag_ids: protocol id → its pipeline DAG id (bundles of other protocols have no pipeline here)
    """

    ui_color = "#efe6fb"

    def __init__(self, *, files: list[str], dag_ids: dict[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.files = files
        self.dag_ids = dag_ids

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from hms.gates import intake_candidates

        for path in self.files:
            run = run_hms(["rule", "push", path], context)
            if run.code != 0:
                self.log.error("intake: %s was not recorded: %s", path, run.failure or f"exit {run.code}; see above")
        ti = context["ti"]
        rows = []
        for c in intake_candidates(self.dag_ids):
            dag_id, run_id = self.dag_ids[c["protocol_id"]], run_id_for(c["sha256"])
            if ti.get_dr_count(dag_id=dag_id, run_ids=[run_id]):
                continue  # taken up already (running, done, or failed: the intake starts a bundle once)
            self.log.info("new bundle %s v%s → %s run %s", c["protocol_id"], c["version"], dag_id, run_id)
            rows.append({"trigger_dag_id": dag_id, "trigger_run_id": run_id, "conf": {"sha256": c["sha256"]}})
        return rows


def build_intake_dag(files: Sequence[Path], dag_ids: dict[str, str]) -> DAG:
    """The ``hms_intake`` DAG: every minute, find new bundles and start one pipeline run for each.

    Paused when first created: turning intake on is a decision (``make up`` does it for a local stack).
    """
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

    with DAG(
        dag_id="hms_intake",
        description="start the first pipeline run of each new bundle (run id bundle-<sha256 prefix>)",
        schedule=timedelta(minutes=1),
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=True,
        tags=["hms", "intake"],
        doc_md=__doc__,
        default_args={"retries": 0},
    ) as dag:
        found = FindNewBundlesOperator(task_id="find_new_bundles", files=[str(f) for f in files], dag_ids=dict(dag_ids))
        TriggerDagRunOperator.partial(
            task_id="start_pipeline",
            logical_date=None,
            skip_when_already_exists=True,
            openlineage_inject_parent_info=False,
        ).expand_kwargs(found.output)
    return dag

"""The card's links into Airflow point at tasks the policy DAG really has (hms_operators.run_links)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hms import protocol
from hms.pipeline_config import load_pipeline_config
from hms.protocol_heads import head_of
from hms.web.bundle_life import STAGES
from tests.conftest import WILDFIRE

pytest.importorskip("airflow")

from hms_operators.dag_factory import build_policy_dag
from hms_operators.run_links import AirflowRunLinks


def test_every_stage_of_a_bundles_life_links_a_task_of_its_policy_dag():
    cfg = load_pipeline_config()
    p = protocol.load(WILDFIRE)
    dag = build_policy_dag(head_of(p, WILDFIRE), WILDFIRE, cfg, Path("include/rollback.sh"))
    links = AirflowRunLinks()
    run = "manual__2027-01-01T00:00:00+00:00"
    linked = set()
    for stage in STAGES:
        for env in (None, *cfg.environment_names):
            href = links.step(p.id, run, stage, env)
            if href is None:
                continue
            task = links.task_id(stage, env)
            assert task in dag.task_dict, (stage, env, task)
            assert href == f"/dags/policy_{p.id}/runs/manual__2027-01-01T00%3A00%3A00%2B00%3A00/tasks/{task}"
            linked.add(stage)
    assert linked == set(STAGES) - {"run"}  # the run itself is the run's link
    assert links.run(p.id, run) == f"/dags/policy_{p.id}/runs/manual__2027-01-01T00%3A00%3A00%2B00%3A00"

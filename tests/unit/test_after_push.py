"""What `hms rule push` says happens next: the intake's run (the same rule the intake applies) or why none."""

from __future__ import annotations

import argparse

import pytest

from hms import deployments
from hms.ci import run_id_for
from hms.cli import main
from hms.cli.after_push import next_step
from hms.cli.ci import _pushed_bundle_run
from hms.errors import BadInput
from hms.registry.db import session_scope
from tests.conftest import ROOT
from tests.dated_protocols import build, write
from tests.deploy_helpers import config, ready, record
from tests.fixtures_registry import direct_writer

PID = "wildfire-aid-2024"


def test_a_new_bundle_gets_the_intakes_run_and_the_command_for_no_airflow(registry_url):
    b = record(build(3))
    step = next_step(PID, 3, b.sha256)
    assert step.starts and step.dag_id == f"policy_{PID}" and step.run_id == run_id_for(b.sha256)
    first, second = step.lines()
    assert first == (
        f"[push] next: with Airflow up (make up), the intake DAG hms_intake starts policy_{PID} "
        f"run {run_id_for(b.sha256)} within a minute"
    )
    assert second == f"[push] next: with no Airflow running: hms ci run .hms-ci/policy-pipeline.yml --bundle {PID}@3"


def test_an_older_or_already_deployed_bundle_gets_no_run_and_says_why(registry_url):
    v3 = ready(record(build(3)))
    with session_scope() as s:
        deployments.deploy(s, v3, "staging", activate_at=None, actor="t", config=config())
    assert next_step(PID, 3, v3.sha256).lines() == [
        "[push] next: no pipeline run for this bundle: it was already deployed (staging), "
        f"and the intake starts a bundle once; see hms rule status {PID}"
    ]
    record(build(4, max_payment=4000))
    step = next_step(PID, 3, v3.sha256)
    assert not step.starts and step.reason == f"{PID} v4 is newer, and the intake takes up only the newest version"
    assert step.to_dict() == {"starts": False, "reason": step.reason}


def test_push_prints_the_next_step_but_not_as_a_pipeline_step(registry_url, tmp_path, capsys):
    proto = write(tmp_path / "wildfire-aid-2024.json", 3)  # a JSON protocol file, as chapter B pushes it
    with direct_writer():
        assert main(["rule", "push", str(proto)]) == 0
    out = capsys.readouterr().out
    assert f"[push] ✅ pushed {PID} v3" in out and "[push] next: with Airflow up" in out
    with direct_writer():
        assert main(["--xcom-file", str(tmp_path / "x.json"), "rule", "push", str(proto)]) == 0  # the build step
    out = capsys.readouterr().out
    assert "already known" in out and "[push] next" not in out


def test_ci_run_bundle_plans_the_pushed_bundles_run_on_its_protocols_pipeline(registry_url):
    b = record(build(4, max_payment=4000))
    (run,) = _pushed_bundle_run(ROOT, argparse.Namespace(bundle=f"{PID}@4", protocol=None), {"chaos_window": "2s"})
    assert (run.sha256, run.run_id, run.dag_id) == (b.sha256, run_id_for(b.sha256), f"policy_{PID}")
    assert run.conf == {"chaos_window": "2s", "sha256": b.sha256}  # the build step fetches these bytes
    assert run.protocol_path.name == "wildfire-aid-2024.yml"
    with pytest.raises(BadInput, match=f"bundle {PID}@4 is of {PID}, not chip-income-cap"):
        _pushed_bundle_run(ROOT, argparse.Namespace(bundle=f"{PID}@4", protocol="chip-income-cap"), {})
    record(build(1, pid="no-file-here"))
    with pytest.raises(BadInput, match="no-file-here has no file in .*include/protocols, so no pipeline DAG runs it"):
        _pushed_bundle_run(ROOT, argparse.Namespace(bundle="no-file-here@1", protocol=None), {})


def test_a_protocol_without_a_file_in_include_protocols_gets_no_run_and_push_says_where_to_add_it(registry_url):
    b = record(build(1, pid="new-benefit-2027"))
    step = next_step("new-benefit-2027", 1, b.sha256)
    assert not step.starts
    assert step.reason == (
        "no pipeline DAG runs new-benefit-2027: the DAG factory makes one per file in "
        f"{ROOT / 'include' / 'protocols'}, so add its protocol file there"
    )

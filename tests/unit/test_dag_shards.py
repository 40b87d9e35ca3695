"""The rule book is split over SHARDS DAG files (hms_operators.dag_file): each protocol's DAG lives in exactly one
file, picked by the protocol file's name alone, so a growing book never moves a DAG between files."""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, WILDFIRE


def dag_ids(dag_file: Path) -> set[str]:
    return {v.dag_id for v in runpy.run_path(str(dag_file)).values() if type(v).__name__ == "DAG"}


def test_there_is_one_dag_file_per_shard_and_the_intakes_own():
    from hms_operators.dag_file import SHARDS

    assert sorted(p.name for p in (ROOT / "dags").glob("*.py")) == sorted(
        ["hms_intake.py", *(f"policy_pipeline_{k}.py" for k in range(SHARDS))]
    )
    for k in range(SHARDS):
        assert f"policy_dags(__file__, shard={k})" in (ROOT / "dags" / f"policy_pipeline_{k}.py").read_text()


def test_a_protocols_shard_depends_on_its_file_name_only():
    from hms_operators.dag_file import SHARDS, shard_of

    names = [f"protocol-{i}.yml" for i in range(400)]
    shards = [shard_of(Path("/a") / n) for n in names]
    assert shards == [shard_of(Path("/elsewhere/else") / n) for n in names]
    assert set(shards) == set(range(SHARDS))  # every file gets work
    assert max(shards.count(k) for k in range(SHARDS)) < 2 * len(names) / SHARDS  # and no file gets most of it


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    """A checkout with twelve protocols (copies of the wildfire sample under new ids) and one file that does not
    load; its own HMS_HOME, so the protocol-head cache starts empty."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "dags", repo / "dags")
    (repo / "include" / "protocols").mkdir(parents=True)
    shutil.copy(ROOT / "include" / "rollback.sh", repo / "include" / "rollback.sh")
    data = yaml.safe_load(WILDFIRE.read_text())
    for i in range(12):
        data["metadata"]["id"] = f"shard-probe-{i}"
        (repo / "include" / "protocols" / f"shard-probe-{i}.yml").write_text(yaml.safe_dump(data))
    (repo / "include" / "protocols" / "broken.yml").write_text("metadata: [not, a, mapping\n")
    monkeypatch.setenv("HMS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HMS_REPO", raising=False)
    return repo


def test_each_protocol_has_its_dag_in_exactly_one_file_and_the_intake_starts_every_one(checkout):
    from hms_operators.dag_file import SHARDS, shard_of

    found = {k: dag_ids(checkout / "dags" / f"policy_pipeline_{k}.py") for k in range(SHARDS)}
    every = [d for ids in found.values() for d in ids]
    assert sorted(every) == sorted({*(f"policy_shard-probe-{i}" for i in range(12)), "policy_broken"})
    for i in range(12):
        assert f"policy_shard-probe-{i}" in found[shard_of(Path(f"shard-probe-{i}.yml"))]
    intake = runpy.run_path(str(checkout / "dags" / "hms_intake.py"))["hms_intake"]
    targets = intake.get_task("find_new_bundles").dag_ids
    assert targets == {f"shard-probe-{i}": f"policy_shard-probe-{i}" for i in range(12)}


def test_the_trigger_form_is_the_dags_and_no_task_carries_a_copy_of_it(checkout):
    """Airflow deep-copies a DAG's params into every task made inside it; the form is set after the tasks, and
    Airflow merges the DAG's params into a task's at run time (so templates still see params.*)."""
    from airflow.sdk.definitions.param import process_params
    from hms_operators.dag_file import shard_of

    k = shard_of(Path("shard-probe-0.yml"))
    dag = runpy.run_path(str(checkout / "dags" / f"policy_pipeline_{k}.py"))["policy_shard-probe-0"]
    assert set(dag.params) == {"bundle", "effective_at", "chaos_window", "chaos_replicas", "chaos_min_health"}
    assert all(len(t.params) == 0 for t in dag.tasks)
    seen = process_params(dag, dag.get_task("build.bundle"), {"effective_at": "+30s"}, suppress_exception=False)
    assert seen["effective_at"] == "+30s" and seen["chaos_window"] == dag.params["chaos_window"]

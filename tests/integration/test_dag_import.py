"""The Airflow DAG files import cleanly and describe the pipeline of design.md (no scheduler run yet)."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, "plugins")
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder="dags")
    out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
    for d in bag.dags.values():
        out["dags"][d.dag_id] = {
            "tasks": [t.task_id for t in d.tasks],
            "tags": sorted(d.tags),
            "max_active_runs": d.max_active_runs,
            "params": sorted(d.params.keys()),
            "bundle": ({"schema": d.params.get_param("bundle").schema,
                        "description": d.params.get_param("bundle").description}
                       if "bundle" in d.params else None),
            "upstream": {t.task_id: sorted(t.upstream_task_ids) for t in d.tasks},
        }
    print(json.dumps(out))
""")


def _dagbag(tmp_path, repo=ROOT, **extra: str) -> dict:
    """Parse the DAG folder in a fresh interpreter with its own AIRFLOW_HOME (Airflow reads config at import)."""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "HMS_REPO": str(repo),
        **extra,
    }
    r = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    import json

    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.airflow
def test_one_dag_per_protocol_with_the_stages_in_order(tmp_path):
    bag = _dagbag(tmp_path)
    assert bag["errors"] == {}
    assert set(bag["dags"]) == {
        "policy_wildfire-aid-2024",
        "policy_chip-income-cap",
        "policy_federal-eitc-2026",
        "policy_snap-texas-fy2026",
        "hms_intake",
    }
    assert bag["dags"]["hms_intake"]["upstream"] == {"find_new_bundles": [], "start_pipeline": ["find_new_bundles"]}
    d = bag["dags"]["policy_wildfire-aid-2024"]
    assert d["max_active_runs"] == 1 and "wildfire-aid-2024" in d["tags"]
    assert {"bundle", "chaos_window", "effective_at"} <= set(d["params"])
    up = d["upstream"]
    spine = [
        "build.bundle",
        "build.schedule_check",
        "test.cases_and_simulation",
        "test.replay",
        "compliance.scan",
        "review.approvals",
        "staging.deploy",
        "staging.smoke",
        "preprod.deploy",
        "preprod.smoke",
        "preprod.chaos",
        "prod.schedule",
        "flip.wait_for_effective_time",
        "flip.verify_live",
        "publish",
    ]
    for before, after in itertools.pairwise(spine):
        assert up[after] == [before], after
    # Any failure after the first deploy triggers the rollback, which then fails the run (one_failed gotcha).
    assert set(spine[spine.index("staging.deploy"):]) <= set(up["rollback"]) and up["fail_run"] == ["rollback"]


@pytest.mark.airflow
def test_a_protocol_that_does_not_load_still_gets_a_dag_that_says_why(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "include", repo / "include", symlinks=False)
    (repo / "include" / "protocols" / "broken.yml").write_text("metadata: {id: Not_A_Label}\n")
    bag = _dagbag(tmp_path, repo)
    assert bag["errors"] == {}
    broken = [d for d in bag["dags"].values() if "broken" in d["tags"]]
    assert len(broken) == 1 and broken[0]["tasks"] == ["protocol_does_not_load"]


@pytest.mark.airflow
def test_with_the_registry_unreachable_the_dags_still_parse_and_the_bundle_field_says_why(tmp_path):
    """Issue 18, item 1: the trigger form's bundle list is read while parsing; a registry that is down must
    not take the DAGs down with it."""
    from hms.chaos import free_port

    dead = f"postgresql+psycopg2://hms:x@127.0.0.1:{free_port()}/hms"
    bag = _dagbag(tmp_path, HMS_DATABASE_URL=dead)
    assert bag["errors"] == {}
    field = bag["dags"]["policy_wildfire-aid-2024"]["bundle"]
    assert "enum" not in field["schema"] and field["schema"]["type"] == ["null", "string"]
    assert "the registry could not be read when Airflow parsed this DAG" in field["description"]
    assert "cannot open the registry at postgresql+psycopg2://hms:***@127.0.0.1" in field["description"]

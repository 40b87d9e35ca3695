"""One Airflow pipeline DAG per protocol in include/protocols (``policy_<id>``), and the intake DAG
(``hms_intake``) that starts one run of it per new bundle.

Declarative on purpose: the stages live in plugins/hms_operators/dag_factory.py,
the logic in src/hms. A protocol file that does not load still gets a DAG — one
that fails with the loader's message — so ops see the problem in the UI instead
of a DAG silently disappearing.
"""

from __future__ import annotations

import os
from pathlib import Path

from hms_operators.dag_factory import build_broken_dag, build_policy_dag
from hms_operators.intake import build_intake_dag

from hms import pushed_bundles
from hms.errors import HmsError
from hms.pipeline_config import load_pipeline_config
from hms.protocol import load

REPO = Path(os.environ.get("HMS_REPO", Path(__file__).resolve().parents[1]))
CONFIG = load_pipeline_config()
PIPELINES: dict[str, str] = {}  # protocol id → DAG id, for the intake
LOADED: list[Path] = []

loaded = {}
for path in sorted((REPO / "include" / "protocols").glob("*.y*ml")) + sorted(
    (REPO / "include" / "protocols").glob("*.json")
):
    try:
        loaded[path] = load(path)
    except HmsError as error:
        dag = build_broken_dag(path, error)
        globals()[dag.dag_id] = dag

# The trigger forms' bundle lists: one registry query for every protocol, each time Airflow parses this file
# (a registry that cannot be read leaves free-text fields that say why; parsing goes on).
PUSHED = pushed_bundles.read([p.id for p in loaded.values()], CONFIG)
for path, protocol in loaded.items():
    dag = build_policy_dag(protocol, path, CONFIG, REPO / "include" / "rollback.sh", PUSHED)
    PIPELINES[protocol.id] = dag.dag_id
    LOADED.append(path)
    globals()[dag.dag_id] = dag

hms_intake = build_intake_dag(LOADED, PIPELINES)

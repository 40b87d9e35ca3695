"""One Airflow pipeline DAG per protocol in include/protocols (``policy_<id>``), and the intake DAG
(``hms_intake``) that starts one run of it per new bundle.

Declarative on purpose: the stages live in plugins/hms_operators/dag_factory.py,
the logic in src/hms. A protocol file that does not load still gets a DAG — one
that fails with the loader's message — so ops see the problem in the UI instead
of a DAG silently disappearing. Files are read as heads (hms.protocol_heads): a
full load's verdict cached by content, so a parse of an unchanged rule book costs
~0.1 ms per file, and new files are loaded in full only within a time budget
(HMS_DAG_PARSE_BUDGET seconds, default 20), the rest read unchecked until a later
parse: Airflow's parse timeout is never reached however many files change.
"""

from __future__ import annotations

import os
from pathlib import Path

from hms_operators.dag_factory import build_broken_dag, build_policy_dag
from hms_operators.intake import build_intake_dag

from hms import pushed_bundles
from hms.pipeline_config import load_pipeline_config
from hms.protocol_heads import BrokenFile, read_heads
from hms.registry.db import hms_home

REPO = Path(os.environ.get("HMS_REPO", Path(__file__).resolve().parents[1]))
CONFIG = load_pipeline_config()
PIPELINES: dict[str, str] = {}  # protocol id → DAG id, for the intake
LOADED: list[Path] = []

loaded = {}
PROTOCOLS = REPO / "include" / "protocols"
files = sorted(PROTOCOLS.glob("*.y*ml")) + sorted(PROTOCOLS.glob("*.json"))
budget = float(os.environ.get("HMS_DAG_PARSE_BUDGET", "20"))
for head in read_heads(files, hms_home() / "cache" / "protocol-heads", budget=budget):
    if isinstance(head, BrokenFile):
        dag = build_broken_dag(head.path, head.message)
        globals()[dag.dag_id] = dag
    else:
        loaded[head.path] = head

# The trigger forms' bundle lists: one registry query for every protocol, each time Airflow parses this file
# (a registry that cannot be read leaves free-text fields that say why; parsing goes on).
PUSHED = pushed_bundles.read([p.id for p in loaded.values()], CONFIG)
for path, protocol in loaded.items():
    dag = build_policy_dag(protocol, path, CONFIG, REPO / "include" / "rollback.sh", PUSHED)
    PIPELINES[protocol.id] = dag.dag_id
    LOADED.append(path)
    globals()[dag.dag_id] = dag

hms_intake = build_intake_dag(LOADED, PIPELINES)

"""What the DAG files in dags/ hold: one pipeline DAG per protocol in include/protocols (``policy_<id>``),
split over ``SHARDS`` files, and the intake DAG (``hms_intake``) that starts one run of them per new bundle.

Why shards: Airflow's dag-processor parses each DAG file in a process of its own, gives up on a file after its
timeout (50 s by default) and drops every DAG of that file. One file for a state's whole rule book makes its
parse time grow with the book until every DAG vanishes at once; ``SHARDS`` files each hold a stable part of it
(by the protocol file's name, so a new file moves no other DAG), are parsed side by side (``[dag_processor]
parsing_processes``), and each stays far inside the timeout. A protocol file that does not load still gets a
DAG — one that fails with the loader's message — so ops see the problem in the UI instead of a DAG silently
disappearing.

Files are read as heads (hms.protocol_heads): a full load's verdict cached by content, so a parse of an unchanged
rule book costs ~0.1 ms per file, and new files are loaded in full only within a time budget
(HMS_DAG_PARSE_BUDGET seconds per shard, default 20), the rest read unchecked until a later parse.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from airflow.sdk import DAG

from hms import pushed_bundles
from hms.pipeline_config import load_pipeline_config
from hms.protocol_heads import BrokenFile, ProtocolHead, protocol_files, read_heads
from hms.registry.location import hms_home
from hms_operators.dag_factory import build_broken_dag, build_policy_dag, dag_id_for
from hms_operators.intake import build_intake_dag

SHARDS = 4  # dags/policy_pipeline_0.py … _3.py: tests/unit/test_dag_shards.py checks the two agree


def repository(dag_file: str) -> Path:
    """The checkout a DAG file belongs to (HMS_REPO overrides): its include/ holds the protocols."""
    return Path(os.environ.get("HMS_REPO", Path(dag_file).resolve().parents[1]))


def shard_of(path: Path) -> int:
    """The DAG file a protocol file's DAG lives in: by its name only, so it stays put as the book grows."""
    return zlib.crc32(path.name.encode()) % SHARDS


def _heads(files: list[Path], budget: float) -> list[ProtocolHead | BrokenFile]:
    return read_heads(files, hms_home() / "cache" / "protocol-heads", budget=budget)


def policy_dags(dag_file: str, shard: int) -> dict[str, DAG]:
    """The pipeline DAGs of one shard's protocol files, by DAG id (the DAG file puts them in its globals)."""
    if not 0 <= shard < SHARDS:
        raise ValueError(f"shard {shard} is not one of 0..{SHARDS - 1}")
    repo = repository(dag_file)
    config = load_pipeline_config()
    files = [f for f in protocol_files(repo) if shard_of(f) == shard]
    budget = float(os.environ.get("HMS_DAG_PARSE_BUDGET", "20"))
    dags: dict[str, DAG] = {}
    loaded: list[ProtocolHead] = []
    for head in _heads(files, budget):
        if isinstance(head, BrokenFile):
            dag = build_broken_dag(head.path, head.message)
            dags[dag.dag_id] = dag
        else:
            loaded.append(head)
    # The trigger forms' bundle lists: one registry query for the shard's protocols, each time Airflow parses
    # its file (a registry that cannot be read leaves free-text fields that say why; parsing goes on).
    pushed = pushed_bundles.read([p.id for p in loaded], config)
    for head in loaded:
        dag = build_policy_dag(head, head.path, config, repo / "include" / "rollback.sh", pushed)
        dags[dag.dag_id] = dag
    return dags


def intake_dag(dag_file: str) -> DAG:
    """The intake over every protocol file. Heads only as the shards have cached them, never a full load here
    (budget 0): a file not checked yet is read unchecked, and the intake's own ``hms rule push`` checks it."""
    heads = [h for h in _heads(protocol_files(repository(dag_file)), budget=0) if isinstance(h, ProtocolHead)]
    return build_intake_dag([h.path for h in heads], {h.id: dag_id_for(h.id) for h in heads})

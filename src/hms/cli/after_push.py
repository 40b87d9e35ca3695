"""What ``hms rule push`` tells the user happens next: the pipeline run a pushed bundle will get.

A push only records a bundle; the pipeline starts elsewhere. With Airflow up (``make up``) the intake
DAG ``hms_intake`` takes the newest never-deployed bundle of each protocol (``hms.gates.intake_candidates``)
and starts ``policy_<id>`` with run id ``hms.ci.run_id_for(sha256)`` within a minute; with no Airflow,
``hms ci run … --bundle`` runs that same pipeline here. Push prints both facts instead of asking Airflow
which one holds: push runs inside the pipeline's build step and every minute inside the intake, where a
call back to Airflow's API is waste, and from a terminal it would need an Airflow login and could hang on
an unreachable server. Both facts are true whatever runs; what is decided here — and read from the
registry and the protocol files only — is whether this bundle will get a run at all: not when no pipeline
DAG exists for its protocol (no file in include/protocols), not when a newer version is recorded, not when
an environment already received it (the intake starts a bundle once; a person may run it again).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hms.ci import dag_id_for, run_id_for
from hms.registry import store
from hms.registry.models import Deployment

CI_COMMAND = "hms ci run .hms-ci/policy-pipeline.yml"


@dataclass(frozen=True)
class NextStep:
    """The pipeline run a pushed bundle will get (``starts``), or why it gets none (``reason``)."""

    protocol_id: str
    version: int
    sha256: str
    starts: bool
    reason: str = ""

    @property
    def dag_id(self) -> str:
        return dag_id_for(self.protocol_id)

    @property
    def run_id(self) -> str:
        return run_id_for(self.sha256)

    @property
    def command(self) -> str:
        return f"{CI_COMMAND} --bundle {self.protocol_id}@{self.version}"

    def lines(self) -> list[str]:
        if not self.starts:
            return [f"[push] next: no pipeline run for this bundle: {self.reason}"]
        return [
            f"[push] next: with Airflow up (make up), the intake DAG hms_intake starts {self.dag_id} "
            f"run {self.run_id} within a minute",
            f"[push] next: with no Airflow running: {self.command}",
        ]

    def to_dict(self) -> dict[str, Any]:
        if not self.starts:
            return {"starts": False, "reason": self.reason}
        return {
            "starts": True,
            "intake_dag_id": "hms_intake",
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "without_airflow": self.command,
        }


def next_step(protocol_id: str, version: int, sha256: str) -> NextStep:
    """Whether the intake will take this bundle up: ``hms.gates.intake_candidates`` decides, as in the intake."""
    from hms.gates import intake_candidates
    from hms.registry.db import session_scope

    folder = _protocol_folder()
    if folder is not None and protocol_id not in _protocol_ids(folder):
        why = (
            f"no pipeline DAG runs {protocol_id}: the DAG factory makes one per file in {folder}, "
            "so add its protocol file there"
        )
        return NextStep(protocol_id, version, sha256, False, why)
    if any(c["sha256"] == sha256 for c in intake_candidates([protocol_id])):
        return NextStep(protocol_id, version, sha256, True)
    with session_scope(read_only=True) as s:
        return NextStep(protocol_id, version, sha256, False, _why_not(s, protocol_id, sha256))


def _why_not(s: Session, protocol_id: str, sha256: str) -> str:
    newest = store.find_bundles(s, protocol_id)[0]
    if newest.sha256 != sha256:
        return f"{protocol_id} v{newest.version} is newer, and the intake takes up only the newest version"
    envs = sorted(set(s.scalars(select(Deployment.environment).where(Deployment.bundle_sha256 == sha256))))
    return (
        f"it was already deployed ({', '.join(envs)}), and the intake starts a bundle once; "
        f"see hms rule status {protocol_id}"
    )


def _protocol_folder() -> Path | None:
    """include/protocols of the checkout the pipeline config belongs to, else of the source checkout (the
    folder ``make up``'s DAGs and ``hms ci run`` read); None when neither exists (an installed package)."""
    from hms.pipeline_config import ROOT, config_path

    config = config_path().resolve()
    for d in [config.parent, *config.parents, ROOT]:
        if (d / "include" / "protocols").is_dir():
            return d / "include" / "protocols"
    return None


def _protocol_ids(folder: Path) -> set[str]:
    """The ``metadata.id`` of each protocol file there, read without loading the rules (a broken file: none)."""
    from hms import yamlsafe
    from hms.errors import HmsError

    ids = set()
    for path in [*folder.glob("*.y*ml"), *folder.glob("*.json")]:
        try:
            data = yamlsafe.load_file(path).data
        except HmsError:
            continue
        meta = data.get("metadata") if isinstance(data, dict) else None
        if isinstance(meta, dict) and isinstance(meta.get("id"), str):
            ids.add(meta["id"])
    return ids

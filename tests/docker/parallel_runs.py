"""Several protocols' pipeline runs at once inside a compose stack, each approved by the two clerks through the
HMS API as its bundle reaches their review board: what the celery test proves things about and the bench times.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hms import bundle, protocol
from tests.conftest import ROOT
from tests.docker.stack import CLERKS, OPERATOR, Stack, until, why


@dataclass(frozen=True)
class Run:
    protocol_id: str
    run_id: str
    sha256: str  # the bundle the run built and the clerks approved
    state: str  # the run's final state
    start: datetime  # the run's start and end as Airflow recorded them
    end: datetime
    tasks: list[dict[str, Any]]  # its task instances as Airflow's REST API shows them (hostname, start_date, …)
    failure: str  # for a failed run its task states and failed tasks' logs (hms_operators print why); else ""

    @property
    def dag_id(self) -> str:
        return f"policy_{self.protocol_id}"


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def wall_seconds(runs: list[Run]) -> float:
    """From the first run's start to the last one's end, by Airflow's own clock (no polling error)."""
    return (max(r.end for r in runs) - min(r.start for r in runs)).total_seconds()


def push_version(stack: Stack, protocol_id: str, version: int) -> str:
    """Push include/protocols' ``protocol_id`` at ``version`` through the HMS API (as the operator, who then
    cannot review it) and return its sha256: a fresh bundle for another round of runs of the same protocol."""
    data = protocol.load(ROOT / "include" / "protocols" / f"{protocol_id}.yml").data
    data["metadata"]["version"] = version
    raw = bundle.build(protocol.from_data(data, f"{protocol_id} v{version}"))
    with stack.hms_api(OPERATOR) as ops:
        r = ops.post("/bundles", json={"bundle_base64": base64.b64encode(raw).decode(), "source": "bench"})
        assert r.status_code == 200, r.text
        return str(r.json()["sha256"])


def run_all(
    stack: Stack, protocol_ids: tuple[str, ...], bundles: dict[str, str] | None = None, timeout: float = 900,
) -> list[Run]:
    """Trigger a run of each protocol at once (of the pushed bundle ``bundles`` names for it, else of its
    include/protocols file), approve each bundle with both clerks when it waits for review, and return the
    runs once every one has ended (failed ones included: the caller asserts)."""
    if len(set(protocol_ids)) != len(protocol_ids):
        raise ValueError(f"one run per protocol (max_active_runs=1 would queue the others): {protocol_ids}")
    tag = secrets.token_hex(3)
    run_ids = {pid: f"parallel-{tag}-{pid}" for pid in protocol_ids}
    with stack.airflow("admin") as admin:
        for pid, run_id in run_ids.items():
            conf = {"sha256": bundles[pid]} if bundles and pid in bundles else {}  # as the intake starts one
            assert admin.trigger(f"policy_{pid}", run_id, conf), f"{run_id} existed already"
        clerks = {c: stack.hms_api(c) for c in CLERKS}
        approved: dict[str, str] = {}
        try:
            def all_approved() -> bool:
                for pid, run_id in run_ids.items():
                    state = admin.run_state(f"policy_{pid}", run_id)
                    assert state in ("queued", "running", "success"), why(admin, f"policy_{pid}", run_id)
                r = clerks["alice"].get("/reviews")
                assert r.status_code == 200, r.text
                for b in r.json()["pending"]:
                    if b["protocol_id"] in run_ids and b["protocol_id"] not in approved:
                        for clerk in CLERKS:
                            a = clerks[clerk].post(f"/reviews/{b['sha256']}/approve", json={"comment": clerk})
                            assert a.status_code == 200, a.text
                        approved[b["protocol_id"]] = b["sha256"]
                return len(approved) == len(run_ids)

            until("every run's bundle on the review board, approved by both clerks", all_approved, timeout)
        finally:
            for c in clerks.values():
                c.close()

        def ended() -> dict[str, dict[str, Any]] | None:
            runs = {pid: admin.run(f"policy_{pid}", run_id) or {} for pid, run_id in run_ids.items()}
            return runs if all(r.get("state") in ("success", "failed") for r in runs.values()) else None

        final = until("every run to end", ended, timeout, 3)
        return [
            Run(pid, run_ids[pid], approved[pid], final[pid]["state"], when(final[pid]["start_date"]),
                when(final[pid]["end_date"]), admin.task_instances(f"policy_{pid}", run_ids[pid]),
                why(admin, f"policy_{pid}", run_ids[pid]) if final[pid]["state"] != "success" else "")
            for pid in protocol_ids
        ]

"""The review and activation waits, without a scheduler: the triggers' ``run()`` and the sensors' methods
against a real registry (SQLite per test), the way the triggerer and the worker call them.

Fast on purpose (poll intervals of 50 ms); the same sensors run through a real triggerer in
tests/integration/test_pipeline_real_airflow.py.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from hms import clock, deployments, protocol
from hms.pipeline_config import load_pipeline_config
from hms.registry.db import session_scope
from hms.registry.models import Approval
from tests.conftest import CHIP, WILDFIRE
from tests.deploy_helpers import approve, promote_all, ready, record, variant

POLL = 0.05


@pytest.fixture(scope="module", autouse=True)
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Airflow reads its home at first import: give it a throw-away one, and make the plugins importable."""
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow-home")))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

def first_event(events: AsyncIterator[Any], timeout: float = 10) -> dict[str, Any]:
    async def one() -> dict[str, Any]:
        async for event in events:
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(one(), timeout))


def approval_trigger(sha256: str, seconds: float = 5) -> Any:
    from hms_operators.triggers import ApprovalTrigger

    return ApprovalTrigger(sha256, time.time() + seconds, POLL)


def review_sensor() -> Any:
    from hms_operators.sensors import ReviewSensor

    return ReviewSensor(task_id="approvals", sha256="", review_timeout=timedelta(seconds=1), poll_interval=POLL)


def review(b: Any, user: str, role: str, decision: str, comment: str = "") -> None:
    with session_scope() as s:
        deployments.record_review(
            s, b, user=user, role=role, decision=decision, comment=comment, config=load_pipeline_config()
        )


def fails_with(sensor: Any, event: dict[str, Any]) -> str:
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as e:
        sensor.execute_complete({}, event)
    return str(e.value)


# ---- review -----------------------------------------------------------------------------------------


def test_a_rejection_ends_the_wait_and_fails_the_review_with_the_clerks_comment():
    b = record(protocol.load(WILDFIRE))
    review(b, "bob", "budget", "approve")
    review(b, "alice", "legal", "reject", "cites the 2023 poverty line")
    event = first_event(approval_trigger(b.sha256).run())
    assert event["state"] == "rejected"
    assert "alice (legal): cites the 2023 poverty line" in fails_with(review_sensor(), event)


def test_no_decision_before_the_deadline_times_the_review_out():
    b = record(protocol.load(WILDFIRE))
    review(b, "alice", "legal", "approve")  # one of two: still waiting
    started = time.monotonic()
    event = first_event(approval_trigger(b.sha256, seconds=0.3).run())
    assert event["state"] == "timeout" and time.monotonic() - started < 3
    assert "timed out" in fails_with(review_sensor(), event)


def test_approvals_of_another_bundle_hash_do_not_count():
    other, v3 = record(variant(2, CHIP)), record(protocol.load(WILDFIRE))
    approve(other)  # alice + bob approved another bundle, not the one this run carries
    assert first_event(approval_trigger(v3.sha256, seconds=0.3).run())["state"] == "timeout"
    approve(v3)
    assert first_event(approval_trigger(v3.sha256).run())["state"] == "approved"


def test_the_authors_own_approval_does_not_count_even_if_a_row_slipped_into_the_registry():
    data = protocol.load(WILDFIRE).data
    data["metadata"]["author"] = "alice"
    b = record(protocol.from_data(data, "by-alice.yml"))
    with session_scope() as s:  # record_review refuses it; a row written around the core must not count either
        s.add(Approval(bundle_sha256=b.sha256, user="alice", role="legal", decision="approve", comment="mine",
                       at=clock.now()))
    review(b, "bob", "budget", "approve")
    assert first_event(approval_trigger(b.sha256, seconds=0.3).run())["state"] == "timeout"
    review(b, "carol", "legal", "approve")
    assert first_event(approval_trigger(b.sha256).run())["state"] == "approved"


def test_approved_by_two_clerks_the_review_succeeds_without_deferring():
    b = record(protocol.load(WILDFIRE))
    approve(b)
    sensor = review_sensor()
    sensor.sha256 = b.sha256
    result = sensor.execute({})  # the answer is known: no deferral, no trigger
    assert result["state"] == "approved" and {a["user"] for a in result["approvers"]} == {"alice", "bob"}


def test_a_waiting_review_defers_to_the_approval_trigger_and_succeeds_when_the_event_says_approved():
    from airflow.sdk.exceptions import TaskDeferred

    b = record(protocol.load(WILDFIRE))
    sensor = review_sensor()
    sensor.sha256 = b.sha256
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert trigger.serialize() == (
        "hms_operators.triggers.ApprovalTrigger",
        {"sha256": b.sha256, "deadline": pytest.approx(time.time() + 1, abs=2), "poll_interval": POLL},
    )
    approve(b)
    assert sensor.execute_complete({}, first_event(trigger.run()))["state"] == "approved"


# ---- activation -------------------------------------------------------------------------------------


def test_the_activation_trigger_follows_a_moved_effective_time():
    from hms_operators.triggers import ActivationTrigger

    cfg = load_pipeline_config()
    b = record(protocol.load(WILDFIRE))
    ready(b, cfg)
    promote_all(b, cfg, activate_at=clock.now() + timedelta(minutes=10), run_id="run-1")

    async def scenario() -> tuple[dict[str, Any], float]:
        trigger = ActivationTrigger("run-1", "prod", POLL)
        task = asyncio.create_task(anext(trigger.run()))
        await asyncio.sleep(0.3)
        assert not task.done()  # ten minutes to go
        moved = clock.now() + timedelta(seconds=1)
        with session_scope() as s:  # a scheduler moves it: deploy again with the run's id (as the clerk page does)
            deployments.deploy(s, b, "prod", activate_at=moved, actor="dana", config=cfg, run_id="run-1")
        event = await asyncio.wait_for(task, 5)
        return dict(event.payload), moved.timestamp()

    event, moved = asyncio.run(scenario())
    assert event["state"] == "due"
    from datetime import datetime

    assert datetime.fromisoformat(event["activate_at"]).timestamp() == pytest.approx(moved, abs=0.01)
    assert time.time() >= moved


def test_a_cancelled_activation_is_reported_and_fails_the_flip():
    from airflow.sdk.exceptions import AirflowFailException
    from hms_operators.sensors import ActivationSensor
    from hms_operators.triggers import ActivationTrigger

    cfg = load_pipeline_config()
    b = record(protocol.load(WILDFIRE))
    ready(b, cfg)
    promote_all(b, cfg, activate_at=clock.now() + timedelta(minutes=10), run_id="run-2")
    with session_scope() as s:  # rollback of a pending prod deployment cancels it
        deployments.rollback(s, b.protocol.id, "prod", actor="ops", config=cfg)
    event = first_event(ActivationTrigger("run-2", "prod", POLL).run())
    assert event == {"state": "cancelled"}
    sensor = ActivationSensor(task_id="wait", run_id="run-2", environment="prod", poll_interval=POLL)
    with pytest.raises(AirflowFailException, match="cancelled"):
        sensor.execute_complete({}, event)

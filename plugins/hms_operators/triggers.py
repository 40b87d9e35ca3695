"""Triggers that wait in the triggerer, off the worker slots, by polling the registry.

They call the core's gate functions in a thread (the registry client is
synchronous) and yield one event: a decision for reviews, the instant for
activations. Both re-read the registry on every poll, so a clerk's decision or a
scheduler moving the effective time is seen within ``poll_interval``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class ApprovalTrigger(BaseTrigger):
    """Fires when the bundle's approval policy is met or a clerk rejected it, or at ``deadline``."""

    def __init__(self, sha256: str, deadline: float, poll_interval: float = 5.0) -> None:
        super().__init__()
        self.sha256 = sha256
        self.deadline = deadline
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "hms_operators.triggers.ApprovalTrigger",
            {"sha256": self.sha256, "deadline": self.deadline, "poll_interval": self.poll_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from hms.gates import review_state

        while True:
            try:
                state = await asyncio.to_thread(review_state, self.sha256)
            except Exception as e:  # a registry hiccup must not end the wait; the next poll retries
                self.log.warning("review state unavailable: %s", e)
                state = {"state": "waiting"}
            if state["state"] != "waiting":
                yield TriggerEvent(state)
                return
            if time.time() >= self.deadline:
                yield TriggerEvent({**state, "state": "timeout"})  # "timeout" wins over "waiting"
                return
            await asyncio.sleep(self.poll_interval)


class ActivationTrigger(BaseTrigger):
    """Fires at the activation instant of a run's pending deployment, following it if it moves."""

    def __init__(self, run_id: str, environment: str, poll_interval: float = 5.0) -> None:
        super().__init__()
        self.run_id = run_id
        self.environment = environment
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "hms_operators.triggers.ActivationTrigger",
            {"run_id": self.run_id, "environment": self.environment, "poll_interval": self.poll_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from hms.gates import activation_time

        while True:
            try:
                at = await asyncio.to_thread(activation_time, self.run_id, self.environment)
            except Exception as e:
                self.log.warning("activation time unavailable: %s", e)
                await asyncio.sleep(self.poll_interval)
                continue
            if at is None:
                yield TriggerEvent({"state": "cancelled"})
                return
            remaining = (at - datetime.now(UTC)).total_seconds()
            if remaining <= 0:
                yield TriggerEvent({"state": "due", "activate_at": at.isoformat()})
                return
            self.log.info("activation in %s at %s; %.1f s to go", self.environment, at.isoformat(), remaining)
            await asyncio.sleep(min(self.poll_interval, remaining))

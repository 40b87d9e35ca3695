"""Sensors for the two human-paced waits: the clerks' review and the legal effective time.

Both defer to a trigger (triggers.py) so no worker slot is held while waiting,
check once on the worker first (no deferral when the answer is already known),
and re-check on resume.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from hms_operators.triggers import ActivationTrigger, ApprovalTrigger

# Airflow 3.3.2 race (apache/airflow #67287, #72716): when a trigger fires before the scheduler has
# drained the executor's "success" event of the worker that deferred, the scheduler sees a resumed task
# as "changed externally" and fails it. It happens when clerks approve, or the effective time comes,
# within seconds of the deferral (demos, tests, a scheduler moving the time to "now"). Both waits are
# idempotent reads of the registry, so a retry is safe: it re-checks and finishes. Real outcomes
# (rejection, timeout, cancellation) raise AirflowFailException, which is never retried.
RACE_RETRIES = {"retries": 2, "retry_delay": timedelta(seconds=1)}


class ReviewSensor(BaseOperator):
    """Waits until the approval policy is met for this exact bundle hash.

    Fails with the reviewer's comment on any rejection, and when ``review_timeout``
    passes without a decision. Approvals for another hash never count (the core's
    ``approvals.evaluate`` decides; the clerk page and the CLI use the same function).

    :param sha256: the bundle hash of this run (templated)
    :param review_timeout: how long clerks have
    :param poll_interval: seconds between registry polls in the triggerer
    """

    template_fields: Sequence[str] = ("sha256",)
    ui_color = "#fff4d6"

    def __init__(
        self,
        *,
        sha256: str,
        review_timeout: timedelta = timedelta(days=7),
        poll_interval: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**{**RACE_RETRIES, **kwargs})
        self.sha256 = sha256
        self.review_timeout = review_timeout
        self.poll_interval = poll_interval

    def execute(self, context: Any) -> Any:
        from hms.gates import review_state

        state = review_state(self.sha256)
        if state["state"] != "waiting":
            return self._finish(state)
        self.log.info("waiting for reviews of %s: %s", self.sha256[:12], state["summary"])
        deadline = time.time() + self.review_timeout.total_seconds()
        self.defer(
            trigger=ApprovalTrigger(self.sha256, deadline, self.poll_interval),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        return self._finish(event)

    def _finish(self, state: dict[str, Any]) -> Any:
        if state["state"] == "approved":
            self.log.info("%s", state["summary"])
            return state
        if state["state"] == "rejected":
            raise AirflowFailException(f"review: {state['summary']}")
        raise AirflowFailException(f"review timed out after {self.review_timeout}: {state.get('summary', '')}")


class ActivationSensor(BaseOperator):
    """Waits until this run's pending deployment in ``environment`` is due (the effective time).

    The instant is read from the registry, not fixed at parse time, so a scheduler
    may move it (``hms rule deploy … --schedule`` or the clerk page) while this waits.

    :param run_id: the pipeline run that staged the deployment (templated)
    :param environment: usually the last environment (prod)
    """

    template_fields: Sequence[str] = ("run_id", "environment")
    ui_color = "#e3f6e8"

    def __init__(self, *, run_id: str, environment: str, poll_interval: float = 5.0, **kwargs: Any) -> None:
        super().__init__(**{**RACE_RETRIES, **kwargs})
        self.run_id = run_id
        self.environment = environment
        self.poll_interval = poll_interval

    def execute(self, context: Any) -> Any:
        from hms.gates import activation_time

        at = activation_time(self.run_id, self.environment)
        if at is None:
            raise AirflowFailException(f"the scheduled activation in {self.environment} was cancelled")
        if at <= datetime.now(UTC):
            return at.isoformat()
        self.log.info("deferring until %s (effective time in %s)", at.isoformat(), self.environment)
        self.defer(
            trigger=ActivationTrigger(self.run_id, self.environment, self.poll_interval),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if event.get("state") == "cancelled":
            raise AirflowFailException(f"the scheduled activation in {self.environment} was cancelled")
        return self.execute(context)  # re-check: it may have moved again after the event

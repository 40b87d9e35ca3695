"""The failure path: undo what this run deployed, through include/rollback.sh, loudly."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from hms_operators.relay import HmsStepFailed, relay_process


class RollbackRunOperator(BaseOperator):
    """Runs ``include/rollback.sh --run <run_id>``; a rollback that fails fails this task.

    The script (short, auditable) calls ``hms rule rollback --run``, which restores
    the previous version in every environment the run touched and writes audit rows.

    :param script: path to include/rollback.sh
    :param run_id: the pipeline run to undo (templated)
    """

    template_fields: Sequence[str] = ("run_id",)
    ui_color = "#fde2e1"

    def __init__(self, *, script: str, run_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.script = script
        self.run_id = run_id

    def execute(self, context: Any) -> Any:
        if not os.access(self.script, os.X_OK):
            raise AirflowFailException(f"rollback script {self.script} is missing or not executable")
        from hms import identity

        # The script's `hms` calls act as the pipeline for this run: the secret, not a name (hms.identity).
        env = {
            **os.environ,
            "HMS_BIN": str(Path(sys.executable).with_name("hms")),
            **identity.pipeline_env(self.run_id),
        }
        env.pop("HMS_ACTOR", None)
        # Streamed, at its levels (hms_operators.relay): a rollback's ❌ lines are the ones ops must see first.
        done = relay_process([self.script, "--run", self.run_id], self.log, env=env, timeout=300)
        if done.returncode != 0:
            self.log.error(
                "ROLLBACK FAILED for run %s (exit %s): environments may still serve this run's version",
                self.run_id,
                done.returncode,
            )
            self._audit_failure(done.returncode, "\n".join(done.tail)[-2000:])
            why = f"rollback of run {self.run_id} failed (exit {done.returncode}): {done.reason}"
            raise HmsStepFailed(why) from None
        return list(done.tail)

    def _audit_failure(self, code: int, output: str) -> None:
        """Leave the failed rollback in the audit trail, where ops and auditors look, not only in a task log.

        Best effort: when the registry itself is what broke, say so in the log (at ERROR) instead.
        """
        try:
            from hms.registry import audit
            from hms.registry.db import session_scope

            with session_scope() as s:
                audit.append(
                    s,
                    actor="airflow-rollback",
                    action="rollback.failed",
                    subject=self.run_id,
                    details={"script": self.script, "exit": code, "output": output},
                )
        except Exception as e:
            self.log.error("the failed rollback could not be recorded in the audit trail either: %s", e)


class FailRunOperator(BaseOperator):
    """Ends the run as failed after a successful rollback (a green rollback leaf would paint it green).

    Its message names the failed step and what the registry says the rollback left
    (hms.abort.failed_run_message): "every environment was rolled back" on a run that deployed nowhere sent
    ops looking for a rollback that never happened; such a run now says "no environment was touched; nothing
    to roll back". With ``message`` (a DAG whose protocol does not load) it says that instead.

    :param run_id: the pipeline run (templated); unset: ``message`` only
    :param message: what to fail with when there is no run to describe
    """

    template_fields: Sequence[str] = ("run_id",)
    ui_color = "#f4b6b2"

    def __init__(self, *, run_id: str | None = None, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.message = message

    def execute(self, context: Any) -> Any:
        if self.run_id is None:
            raise AirflowFailException(self.message or "this pipeline cannot run")
        failed = self._failed_tasks(context)
        try:
            from hms.abort import failed_run_message
            from hms.registry.db import session_scope

            with session_scope(read_only=True) as s:
                what = failed_run_message(s, self.run_id, failed)
        except Exception as e:  # the registry is what broke: say so, do not guess what was undone
            which = ", ".join(failed) or "a pipeline step"
            what = (
                f"{which} failed; what the rollback left could not be read from the registry ({type(e).__name__}: {e})"
            )
        raise AirflowFailException(what)

    def _failed_tasks(self, context: Any) -> list[str]:
        """The run's tasks Airflow holds ``failed`` (not ``upstream_failed``: those only followed), in DAG order.

        Best effort: an Airflow that cannot say leaves the message without them, never without the summary.
        """
        try:
            states = context["ti"].get_task_states(dag_id=self.dag_id, run_ids=[self.run_id]).get(self.run_id, {})
        except Exception as e:
            self.log.warning("could not read the run's task states: %s", e)
            return []
        order = {t: i for i, t in enumerate(self.dag.task_ids)} if self.has_dag() else {}
        return sorted(
            (t for t, st in states.items() if st == "failed" and t != self.task_id),
            key=lambda t: (order.get(t, len(order)), t),
        )

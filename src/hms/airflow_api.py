"""The one Airflow REST API (v2) client of the project: ``hms ci run``, the rollback's run notes
(hms.run_notes) and the local stack (devtools.airflow_stack) all talk to Airflow through it.

Plain HTTP with a token from ``POST /auth/token``: the core imports nothing from Airflow. Airflow's
refusals are ``BadInput`` naming the URL and what was asked; an unreachable server is httpx's own error.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from hms.errors import BadInput

NOTE_LIMIT = 1000  # DAGRunPatchBody.note: max_length=1000 (airflow/api_fastapi/core_api/datamodels/dag_run.py)


class AirflowApi:
    """The few calls ``hms ci run`` needs from Airflow's public REST API, with a token from ``/auth/token``."""

    def __init__(self, url: str, user: str, password: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        self._user, self._password = user, password

    def healthy(self) -> bool:
        try:
            r = self._http.get("/api/v2/monitor/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    def login(self) -> None:
        r = self._http.post("/auth/token", json={"username": self._user, "password": self._password})
        if r.status_code not in (200, 201):
            raise BadInput(f"Airflow at {self.url}: login as {self._user!r} refused ({r.status_code})")
        self._http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def _ok(self, r: Any, what: str) -> Any:
        if r.status_code >= 400:
            raise BadInput(f"Airflow at {self.url}: {what}: {r.status_code} {r.text[:300]}")
        return r.json() if r.content else None

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> bool:
        """Start ``run_id``; False when it already exists (then the caller follows it).

        A 5xx (Airflow on SQLite under load: the lock wait ran out) is retried with the same run id,
        so a retry never starts a second run; a 409 after a 5xx is our own earlier attempt.
        """
        failed_before = False
        for attempt in range(5):
            if attempt:
                time.sleep(attempt)
            r = self._http.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False})
            if r.status_code >= 500:
                continue
            self._ok(r, f"unpause {dag_id}")
            r = self._http.post(
                f"/api/v2/dags/{dag_id}/dagRuns", json={"dag_run_id": run_id, "logical_date": None, "conf": conf}
            )
            if r.status_code >= 500:
                failed_before = True
                continue
            if r.status_code == 409:
                return failed_before
            self._ok(r, f"trigger {dag_id}")
            return True
        self._ok(r, f"trigger {dag_id} (after 5 attempts)")
        return True

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self._ok(self._http.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"), "read run")["state"]

    def run(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        """The run as the REST API shows it (state, conf, note, …); None when there is no such run."""
        r = self._http.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        if r.status_code == 404:
            return None
        return dict(self._ok(r, f"read run {run_id}"))

    def runs(self, dag_id: str, states: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """The DAG's newest 100 runs (only those in ``states``, if given), newest first."""
        params: dict[str, Any] = {"limit": 100, "order_by": "-id"}
        if states:
            params["state"] = list(states)
        r = self._http.get(f"/api/v2/dags/{dag_id}/dagRuns", params=params)
        if r.status_code == 404:  # a DAG not parsed yet has no runs
            return []
        return list(self._ok(r, f"list runs of {dag_id}")["dag_runs"])

    def add_note(self, dag_id: str, run_id: str, line: str) -> str:
        """Append ``line`` to the run's note (``PATCH …/dagRuns/{run_id}`` with ``note``; Airflow keeps 1000
        characters: the oldest lines go first) and return the note as Airflow now holds it."""
        current = (self.run(dag_id, run_id) or {}).get("note") or ""
        lines = [*current.splitlines(), line]
        while len("\n".join(lines)) > NOTE_LIMIT and len(lines) > 1:
            lines.pop(0)
        note = "\n".join(lines)[-NOTE_LIMIT:]
        r = self._http.patch(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", params={"update_mask": ["note"]}, json={"note": note}
        )
        return str(self._ok(r, f"note on run {run_id}").get("note") or "")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        body = self._ok(
            self._http.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 200}),
            "read task instances",
        )
        return {t["task_id"]: t["state"] for t in body["task_instances"]}

    def result(self, dag_id: str, run_id: str, task_id: str) -> Any:
        r = self._http.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value")
        if r.status_code == 404:
            return None
        value = self._ok(r, f"read result of {task_id}")["value"]
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

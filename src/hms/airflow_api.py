"""The one Airflow REST API (v2) client of the project: ``hms ci run``, the rollback's run notes
(hms.run_notes) and the local stack (devtools.airflow_stack) all talk to Airflow through it.

Plain HTTP with a token from ``POST /auth/token``: the core imports nothing from Airflow. Airflow's
refusals are ``BadInput`` naming the URL and what was asked; an unreachable server is httpx's own error.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from hms.errors import BadInput

NOTE_LIMIT = 1000  # DAGRunPatchBody.note: max_length=1000 (airflow/api_fastapi/core_api/datamodels/dag_run.py)


@dataclass(frozen=True)
class Dag:
    """A DAG the API knows (parsed and serialized), as far as waiting for the parse needs it."""

    dag_id: str
    tags: frozenset[str]


@dataclass(frozen=True)
class DagImportError:
    """A DAG file the dag-processor could not import, and why."""

    filename: str
    stack_trace: str


class AirflowApi:
    """The calls the project makes to Airflow's public REST API, with a token from ``/auth/token``.

    :param http: a client of one's own (a test's ``httpx.MockTransport``); its base URL is where requests
        go. By default one on ``url`` with ``timeout``. Closed by ``close`` either way.
    """

    def __init__(
        self, url: str, user: str, password: str, timeout: float = 10.0, http: httpx.Client | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self._http = http if http is not None else httpx.Client(base_url=self.url, timeout=timeout)
        self._user, self._password = user, password

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AirflowApi:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def health(self, timeout: float = 5.0) -> dict[str, Any]:
        """``GET /api/v2/monitor/health`` (no token needed): each component's status and latest heartbeat."""
        return dict(self._ok(self._http.get("/api/v2/monitor/health", timeout=timeout), "health"))

    def healthy(self) -> bool:
        """Whether an API server answers here (``hms ci run`` then goes through it, else runs the DAG itself)."""
        try:
            self.health(timeout=2.0)
        except (httpx.HTTPError, BadInput, ValueError):
            return False
        return True

    def token(self) -> str:
        """A JWT for the user from ``POST /auth/token`` (what the UI and API clients hold)."""
        r = self._http.post("/auth/token", json={"username": self._user, "password": self._password})
        if r.status_code not in (200, 201):
            raise BadInput(f"Airflow at {self.url}: login as {self._user!r} refused ({r.status_code})")
        return str(r.json()["access_token"])

    def login(self) -> None:
        """Send the user's token with every later request."""
        self._http.headers["Authorization"] = f"Bearer {self.token()}"

    def _ok(self, r: httpx.Response, what: str) -> Any:
        if r.status_code >= 400:
            raise BadInput(f"Airflow at {self.url}: {what}: {r.status_code} {r.text[:300]}")
        return r.json() if r.content else None

    def _retried(self, method: str, path: str, attempts: int = 5, **kwargs: Any) -> list[httpx.Response]:
        """Every answer to the request, sent again after 1, 2, … s while Airflow answers 5xx (on SQLite under
        load a lock wait runs out); the last answer is the last in the list."""
        answers = [self._http.request(method, path, **kwargs)]
        for attempt in range(1, attempts):
            if answers[-1].status_code < 500:
                break
            time.sleep(attempt)
            answers.append(self._http.request(method, path, **kwargs))
        return answers

    def unpause(self, dag_id: str, attempts: int = 5) -> None:
        """Turn ``dag_id`` on and read it back; BadInput when Airflow does not confirm it.

        A DAG created paused (the intake: ``is_paused_upon_creation=True``) stays paused in the UI until
        someone turns it on, and a push or a trigger then starts nothing. A 5xx is retried; the read-back
        makes a silent failure impossible.
        """
        r = self._retried("PATCH", f"/api/v2/dags/{dag_id}", attempts, json={"is_paused": False})[-1]
        if r.status_code != 200:
            raise BadInput(f"Airflow at {self.url}: turning {dag_id} on: PATCH /api/v2/dags/{dag_id} answered "
                           f"{r.status_code} {r.text[:300]}")
        back = self._http.get(f"/api/v2/dags/{dag_id}")
        if back.status_code != 200 or back.json().get("is_paused") is not False:
            raise BadInput(f"Airflow at {self.url}: {dag_id} is still paused after turning it on "
                           f"({back.status_code} {back.text[:300]})")

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> bool:
        """Turn ``dag_id`` on (``unpause``) and start ``run_id``; False when it already exists (then the caller
        follows it).

        A 5xx is retried with the same run id, so a retry never starts a second run; a 409 after a 5xx is our
        own earlier attempt.
        """
        self.unpause(dag_id)
        answers = self._retried(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"dag_run_id": run_id, "logical_date": None, "conf": conf}
        )
        if answers[-1].status_code == 409:
            return len(answers) > 1
        self._ok(answers[-1], f"trigger {dag_id}" + (f" (after {len(answers)} attempts)" if len(answers) > 1 else ""))
        return True

    def dags(self) -> list[Dag]:
        """The DAGs the API knows (up to 1000); a 5xx is retried."""
        body = self._ok(self._retried("GET", "/api/v2/dags", params={"limit": 1000})[-1], "list DAGs")
        return [Dag(d["dag_id"], frozenset(t["name"] for t in d.get("tags") or [])) for d in body["dags"]]

    def import_errors(self) -> list[DagImportError]:
        """The DAG files that failed to import; a 5xx is retried."""
        body = self._ok(self._retried("GET", "/api/v2/importErrors")[-1], "list import errors")
        return [DagImportError(str(e.get("filename")), str(e.get("stack_trace") or "")) for e in body["import_errors"]]

    def run_state(self, dag_id: str, run_id: str) -> str:
        r = self._http.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        return str(self._ok(r, f"read run {dag_id}/{run_id}")["state"])

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

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The run's task instances as the REST API shows them (task_id, state, try_number, start_date, …)."""
        r = self._http.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
        return list(self._ok(r, f"task instances of {dag_id}/{run_id}")["task_instances"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """task_id → state (None for a task not scheduled yet)."""
        return {t["task_id"]: t["state"] for t in self.task_instances(dag_id, run_id)}

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The task's log as text: the REST API's structured lines (level, event, the rest) joined."""
        r = self._http.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            headers={"Accept": "application/json"},
        )
        content = self._ok(r, f"log of {dag_id}/{run_id}/{task_id}").get("content", "")
        if isinstance(content, str):
            return content
        lines = []
        for item in content:
            if isinstance(item, dict):
                extra = {k: v for k, v in item.items() if k not in ("event", "timestamp", "level", "logger")}
                lines.append(f"{item.get('level', '')} {item.get('event', '')} {extra if extra else ''}".strip())
            else:
                lines.append(str(item))
        return "\n".join(lines)

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

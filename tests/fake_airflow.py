"""A small Airflow REST API (v2) on 127.0.0.1, in a thread: the calls hms.airflow_api.AirflowApi makes, nothing more.

Real HTTP, so the client's requests, status codes and JSON are exercised as they are against Airflow; the
real thing is tests/integration/test_pipeline_real_airflow.py. Runs live in ``runs`` (dag_id → run_id →
the run's REST representation), whether a DAG is paused in ``paused``; ``requests`` records (method, path,
body) of every call.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

RUN = re.compile(r"^/api/v2/dags/([^/]+)/dagRuns/([^/]+)$")
RUNS = re.compile(r"^/api/v2/dags/([^/]+)/dagRuns$")
DAG = re.compile(r"^/api/v2/dags/([^/]+)$")


@dataclass
class FakeAirflow:
    url: str = ""
    password: str = "secret"
    runs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    paused: dict[str, bool] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)

    def add_run(self, dag_id: str, run_id: str, state: str = "success", conf: dict[str, Any] | None = None) -> None:
        self.runs.setdefault(dag_id, {})[run_id] = {
            "dag_run_id": run_id,
            "dag_id": dag_id,
            "state": state,
            "conf": conf or {},
            "note": None,
        }


@contextmanager
def fake_airflow() -> Iterator[FakeAirflow]:
    fake = FakeAirflow()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            n = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(n)) if n else None

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") == "Bearer token-admin":
                return True
            self._send(401, {"detail": "Not authenticated"})
            return False

        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
            path, query = unquote(parts.path), parse_qs(parts.query)
            body = self._body() if method in ("POST", "PATCH") else None
            fake.requests.append((method, self.path, body))
            if path == "/auth/token" and method == "POST":
                ok = body == {"username": "admin", "password": fake.password}
                return self._send(201, {"access_token": "token-admin"}) if ok else self._send(401, {"detail": "no"})
            if not self._authorized():
                return None
            if m := RUN.match(path):
                run = fake.runs.get(m[1], {}).get(m[2])
                if run is None:
                    return self._send(
                        404, {"detail": f"The DagRun with dag_id: `{m[1]}` and run_id: `{m[2]}` was not found"}
                    )
                if method == "PATCH":
                    run.update({k: v for k, v in body.items() if k in query.get("update_mask", body.keys())})
                return self._send(200, run)
            if m := RUNS.match(path):
                if method == "POST":
                    if body["dag_run_id"] in fake.runs.get(m[1], {}):
                        return self._send(409, {"detail": "Unique constraint violation"})
                    fake.add_run(m[1], body["dag_run_id"], "queued", body.get("conf"))
                    return self._send(200, fake.runs[m[1]][body["dag_run_id"]])
                runs = list(reversed(fake.runs.get(m[1], {}).values()))  # newest first (order_by=-id)
                if "state" in query:
                    runs = [r for r in runs if r["state"] in query["state"]]
                return self._send(200, {"dag_runs": runs, "total_entries": len(runs)})
            if m := DAG.match(path):  # a DAG is paused until turned on, as the intake is created
                if method == "PATCH":
                    fake.paused[m[1]] = body["is_paused"]
                return self._send(200, {"dag_id": m[1], "is_paused": fake.paused.get(m[1], True)})
            return self._send(404, {"detail": "not found"})

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()

"""A run started from Airflow's trigger form names the bundle it runs: ``bundle-<sha12>-<UTC stamp>``.

Airflow 3.3's form posts the trigger without a run id, and Airflow makes one, ``manual__<time>``, from the
DAG's timetable — which never sees the conf, so no timetable could name the pick. This root middleware (an
Airflow plugin's ``fastapi_root_middlewares``, in the api-server) fills the id in for one kind of request only:
a POST that triggers a ``policy_<id>`` DAG, picked a pushed bundle (``conf.bundle``, a full sha256) and gave
no id of its own. It gives the id ``hms ci run`` gives a later run of a bundle (hms.ci.run_id_for), so the grid
names the bundle and ids never burn (a new stamp each time). Every other request passes untouched, byte for
byte; a body that is not JSON is left for Airflow to refuse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from hms import clock
from hms.ci import run_id_for

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TRIGGER = re.compile(r"/api/v2/dags/policy_[^/]+/dagRuns$")
SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_BODY = 1 << 20  # a trigger body is a few hundred bytes; a larger one is passed on unread


def named(body: bytes) -> bytes | None:
    """The trigger body with the run id that names its picked bundle; None when it is not such a trigger."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("dag_run_id"):
        return None
    conf = data.get("conf")
    sha = conf.get("bundle") if isinstance(conf, dict) else None
    if not isinstance(sha, str) or not SHA256.fullmatch(sha):
        return None
    return json.dumps({**data, "dag_run_id": run_id_for(sha, clock.now())}).encode()


class BundleRunIds:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not TRIGGER.search(scope["path"]):
            await self.app(scope, receive, send)
            return
        read: list[Message] = []
        size, more = 0, True
        while more and size <= MAX_BODY:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                break  # the client went away: Airflow sees it as it would have
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        whole = not more and size <= MAX_BODY and all(m["type"] == "http.request" for m in read)
        body = b"".join(m.get("body", b"") for m in read) if whole else b""
        new = named(body) if whole else None
        if new is not None:
            read = [{"type": "http.request", "body": new, "more_body": False}]
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
            scope = {**scope, "headers": [*headers, (b"content-length", str(len(new)).encode())]}
        pending = list(read)

        async def replay() -> Message:
            return pending.pop(0) if pending else await receive()

        await self.app(scope, replay, send)

"""Bounded request heads for the decision service: 16 KiB of request line and headers, 8 KiB a line.

Two layers, because one alone leaves a hole:

* ``BoundedH11Protocol`` is the server's HTTP/1.1 parser (``hms serve`` runs uvicorn with it). uvicorn's
  default parser, httptools, buffers a head of any size (a 1 MB header was accepted); h11 stops buffering
  at ``max_incomplete_event_size`` and raises. uvicorn then answers a plain-text 400 whatever went wrong;
  this subclass answers h11's own status hint (431 for a head too large) with a JSON body naming the place.
* ``HeaderBounds`` (ASGI middleware) checks each header line and the total again inside the app, so the
  bound holds under any server (the test client, another ASGI server) and a 431 names the header.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import h11
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from hms.service import refusal
from hms.service.limits import MAX_HEAD_BYTES, MAX_HEADER_LINE_BYTES


def head_problem(scope: Scope) -> tuple[int, str, list[Any]] | None:
    """Why a request head breaks the bounds (status, message, place), or None.

    h11 enforces ``MAX_HEAD_BYTES`` only while a head is incomplete: a whole oversized head arriving in one
    read is parsed. So the request target and each header line are measured here as well.
    """
    target = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") + 1
    if target > MAX_HEADER_LINE_BYTES:
        return 414, f"request target is {target} bytes, over {MAX_HEADER_LINE_BYTES}", ["path"]
    total = target
    for name, value in scope["headers"]:
        line = len(name) + 2 + len(value)  # "name: value"
        total += line + 2
        if line > MAX_HEADER_LINE_BYTES:
            shown = refusal.safe_text(name.decode("latin-1"), 80)
            return 431, f"header {shown!r} is {line} bytes, over {MAX_HEADER_LINE_BYTES} a line", ["header", shown]
    if total > MAX_HEAD_BYTES:
        return 431, f"request line and headers are {total} bytes, over {MAX_HEAD_BYTES} in all", ["header"]
    return None


class HeaderBounds:
    """ASGI middleware: a request whose head breaks the bounds is a 414 / 431 before any route runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = head_problem(scope)
            if problem is not None:
                await refusal.render(*problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _RecordingConnection(h11.Connection):
    """h11's connection, remembering the protocol error it raised (uvicorn's handler does not pass it on)."""

    refused: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as e:
            self.refused = e
            raise


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the head bounded to ``MAX_HEAD_BYTES`` and JSON refusals."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _RecordingConnection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)

    def send_400_response(self, msg: str) -> None:
        err = self.conn.refused if isinstance(self.conn, _RecordingConnection) else None
        status = err.error_status_hint if err is not None else 400
        # h11 hints 501 for a transfer coding it does not implement; the request is still the client's fault,
        # and a 5xx would count against the service in every dashboard that pages on them.
        status = status if 400 <= status < 500 else 400
        if status == 431:
            message, loc, kind = f"request line and headers larger than {MAX_HEAD_BYTES} bytes", ["header"], None
        else:
            message, loc, kind = f"malformed HTTP request: {err or msg}", ["request"], "http_invalid"
        content = refusal.body(status, message, loc, kind=kind)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode()),
                   (b"connection", b"close")]
        head = h11.Response(status_code=status, headers=headers, reason=HTTPStatus(status).phrase.encode())
        for event in (head, h11.Data(data=content), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()

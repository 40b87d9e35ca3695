"""How the decision service says no: a 4xx JSON body naming the place, always encodable.

``Refusal`` is raised by handlers and the body parser; ``render`` is the one place a refusal becomes bytes.
It escapes anything UTF-8 cannot carry (a lone surrogate from ``"\\ud800"`` in the request) and cuts long
values, because a crash while rendering the message about a bad field is how a 4xx became a 500.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from hms.service.limits import MAX_QUOTED_CHARS

TYPES = {400: "json_invalid", 404: "not_found", 413: "too_large", 414: "too_large", 422: "value_error",
         431: "too_large", 503: "unavailable"}
# A message is a sentence plus at most a couple of quoted values; anything longer came from the caller.
MAX_MESSAGE_CHARS = 4 * MAX_QUOTED_CHARS
# Every problem of a request at once, but a bounded answer: a 100-member household of wrong fields is not 10k.
MAX_PROBLEMS = 100


class Refusal(Exception):
    """A request refused with ``status``; ``loc`` is the place (["body", "input", "household_size"]).

    ``more`` are further (message, loc) problems of the same request, reported in the same answer.
    """

    def __init__(
        self, status: int, message: str, loc: list[Any] | None = None, *, more: list[tuple[str, list[Any]]] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.loc = loc
        self.more = list(more)


def safe_text(s: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """``s`` with what UTF-8 cannot encode written as ``\\udXXX`` escapes, cut to ``limit`` characters."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = s.encode("utf-8", "backslashreplace").decode("utf-8")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def quote(value: Any) -> str:
    """A caller's value for an error message: its repr (which escapes surrogates), at most 200 characters."""
    return safe_text(repr(value))


def body(
    status: int,
    message: str,
    loc: list[Any] | None = None,
    *,
    kind: str | None = None,
    more: list[tuple[str, list[Any]]] = (),
) -> bytes:
    """The JSON bytes of a refusal (FastAPI's validation-error shape, so clients parse one format): one
    ``detail`` entry per problem, the first being ``message`` at ``loc``."""
    kind = kind or TYPES.get(status, "error")
    detail = [
        {"loc": [safe_text(p) if isinstance(p, str) else p for p in (where or ["body"])],
         "msg": safe_text(msg, MAX_MESSAGE_CHARS), "type": kind}
        for msg, where in [(message, loc), *more[:MAX_PROBLEMS - 1]]
    ]
    return json.dumps({"detail": detail}, ensure_ascii=False).encode("utf-8")


def render(
    status: int, message: str, loc: list[Any] | None = None, *, more: list[tuple[str, list[Any]]] = ()
) -> Response:
    return Response(body(status, message, loc, more=more), status_code=status, media_type="application/json")

"""A decision request's JSON body, parsed by us and bounded before any handler sees it.

Parsed here rather than by FastAPI so each way a body can be hostile has its own clear 4xx:
malformed JSON or nesting past ``MAX_JSON_DEPTH`` is a 400, an oversized body a 413 (read in chunks, never
buffered past the limit), and a number past ``MAX_SAFE_INTEGER`` (or NaN / Infinity) or text UTF-8 cannot
carry (a lone surrogate) a 422 naming the field. Numbers are screened as the parser meets them: a
5,000-digit integer is refused from its length, before ``int()`` (which raises past 4,300 digits) runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from typing import Any

from hms.service.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH, MAX_SAFE_INTEGER
from hms.service.refusal import Refusal, quote

_SAFE_DIGITS = len(str(MAX_SAFE_INTEGER))


class _Unsafe:
    """A number the body may not carry, kept as its text so the walk can name where it is."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _parse_int(text: str) -> int | _Unsafe:
    if len(text.lstrip("-")) > _SAFE_DIGITS:
        return _Unsafe(text)
    n = int(text)
    return n if abs(n) <= MAX_SAFE_INTEGER else _Unsafe(text)


def _parse_float(text: str) -> float | _Unsafe:
    x = float(text)  # any length of JSON number text; 1e999 becomes inf, refused below
    return x if math.isfinite(x) and abs(x) <= MAX_SAFE_INTEGER else _Unsafe(text)


def _depth(x: Any, limit: int) -> int:
    """Nesting depth, stopping early past ``limit`` (hostile bodies can nest deeply)."""
    stack = [(x, 1)]
    deepest = 0
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(v, dict):
            stack.extend((c, d + 1) for c in v.values())
        elif isinstance(v, list):
            stack.extend((c, d + 1) for c in v)
    return deepest


def _encodable(s: str) -> bool:
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _first_refused(data: Any) -> Refusal | None:
    """The first value (document order) the body may not carry, as a 422 naming its place."""
    stack: list[tuple[Any, list[Any]]] = [(data, ["body"])]
    while stack:
        v, loc = stack.pop()
        if isinstance(v, _Unsafe):
            what = "not a number" if v.text in ("NaN", "Infinity", "-Infinity") else "too large"
            return Refusal(422, f"{quote(v.text)} is {what}: numbers must be finite and within ±2**53", loc)
        if isinstance(v, str) and not _encodable(v):
            return Refusal(422, f"text is not valid Unicode (a lone surrogate): {quote(v)}", loc)
        if isinstance(v, dict):
            for k in v:
                if not _encodable(k):
                    return Refusal(422, f"field name is not valid Unicode (a lone surrogate): {quote(k)}", [*loc, k])
            stack.extend((c, [*loc, k]) for k, c in reversed(v.items()))
        elif isinstance(v, list):
            stack.extend((c, [*loc, i]) for i, c in reversed(list(enumerate(v))))
    return None


def parse(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a ``Refusal`` (400 / 422) naming what is wrong and where."""
    try:
        data = json.loads(raw, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_Unsafe)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise Refusal(400, f"malformed JSON: {e}") from None
    if _depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise Refusal(400, f"JSON nested deeper than {MAX_JSON_DEPTH}")
    refused = _first_refused(data)
    if refused is not None:
        raise refused
    if not isinstance(data, dict):
        raise Refusal(422, "body must be a JSON object")
    return data


def _declares_too_much(length: str) -> bool:
    """Content-Length past the limit, judged from its digits (int() of 5,000 digits raises; "²" is a digit)."""
    digits = length.strip()
    if not (digits.isascii() and digits.isdigit()):
        return False  # not a length at all: the server's parser refuses it, or the read below bounds it
    return len(digits.lstrip("0")) > len(str(MAX_BODY_BYTES)) or int(digits) > MAX_BODY_BYTES


async def read(declared_length: str | None, chunks: AsyncIterator[bytes]) -> dict[str, Any]:
    """Read at most ``MAX_BODY_BYTES`` (413 past it, whatever Content-Length claims) and ``parse`` it."""
    if declared_length is not None and _declares_too_much(declared_length):
        raise Refusal(413, f"body larger than {MAX_BODY_BYTES} bytes")
    raw = b""
    async for chunk in chunks:
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise Refusal(413, f"body larger than {MAX_BODY_BYTES} bytes")
    return parse(raw)

"""The one bound on numbers: |x| ≤ 2**53, finite, for protocol values, table keys and rule constants.

2**53 is where float64 — the type every rule computes in, on both backends — stops holding every
integer exactly, so a larger parameter or constant would silently become another number. The bound
is decided on the *text* of a number before it is converted (``refusal``): ``int()`` of 5,000 digits
raises, ``float()`` of ``10**400`` overflows, and neither should be reached with hostile text.
``MAX_CHARS`` bounds the text itself; no honest number needs more.
"""

from __future__ import annotations

import math
import re

from hms.errors import clip

MAX_EXACT = 2**53
MAX_CHARS = 100
BOUND = f"±2**53 ({MAX_EXACT})"

_DECIMAL_INT = re.compile(r"[-+]?[0-9]+")
_NOT_FINITE = {"nan", "inf", "infinity", ".nan", ".inf"}


def check(value: int | float) -> str | None:
    """Why an already converted number is refused, or None."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN is not a number a protocol can use"
    if isinstance(value, float) and math.isinf(value):
        return f"{value} is beyond {BOUND}"
    if abs(value) > MAX_EXACT:
        return f"{_text(value)} is beyond {BOUND}: not exact in float64"
    return None


def refusal(text: str) -> str | None:
    """Why the number written as ``text`` (YAML 1.2 core or JSON syntax) is refused, or None: bounded work."""
    if text.lstrip("+-").lower() in _NOT_FINITE:
        return f"{text} is not allowed: NaN and infinity are not numbers a protocol can use"
    if len(text) > MAX_CHARS:
        return f"number {clip(text, 20)} is too long: at most {MAX_CHARS} characters, within {BOUND}"
    body = text.lstrip("+-")
    try:
        if body[:2].lower() in ("0x", "0o"):
            value: int | float = int(text, 0)
        elif _DECIMAL_INT.fullmatch(text):
            value = int(text)
        else:
            value = float(text)
    except ValueError:
        return f"{text!r} is not a number"
    if isinstance(value, float) and math.isinf(value):
        return f"{text} is beyond {BOUND}"
    return check(value)


def _text(value: int | float) -> str:
    return clip(repr(value), 40) if isinstance(value, float) or value.bit_length() < 4000 else "an integer this long"

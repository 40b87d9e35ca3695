"""The one clock the core reads.

"Now" decides which law is in force, whether a protocol's effective time has passed,
and when a scheduled activation is due. A module that calls ``datetime.now`` itself
gives the test suite an expiry date, so everything in ``src/hms`` asks ``now()``.

Tests move time in one of two ways, never by picking calendar dates:
- in-process, ``frozen(at)`` or ``shifted(delta)`` (context managers);
- for whole processes (the CLI, a decision service, chaos replicas), the shifted-clock
  tiers (``make test-shifted``: tests/shifted_clock/sitecustomize.py) move the wall
  clock of every Python process 400 days and 5 years ahead. Both act on what
  ``datetime.now`` returns, so this module reads no environment variable a caller
  could use to lie about the time in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

_frozen: datetime | None = None
_offset = timedelta(0)


def now() -> datetime:
    """The current instant, aware, in UTC."""
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC) + _offset


@contextmanager
def frozen(at: datetime) -> Iterator[datetime]:
    """Stop the clock at ``at`` (aware) for the block: every ``now()`` returns it."""
    global _frozen
    if at.tzinfo is None:
        raise ValueError("frozen() needs an aware datetime")
    before, _frozen = _frozen, at.astimezone(UTC)
    try:
        yield _frozen
    finally:
        _frozen = before


@contextmanager
def shifted(delta: timedelta) -> Iterator[None]:
    """Let the clock run ``delta`` ahead (or behind) of the wall clock for the block."""
    global _offset
    before, _offset = _offset, _offset + delta
    try:
        yield
    finally:
        _offset = before

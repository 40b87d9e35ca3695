"""Parse an activation time the way schedulers write it.

``HH:MM`` means the next occurrence of that wall-clock time in the pipeline's
timezone (e.g. midnight in America/New_York), computed with zoneinfo so it is
right across DST changes; a wall time that does not exist that day (the spring
gap) is refused rather than silently shifted. Also accepted: an ISO 8601
date-time with an offset, ``now``, and ``+N[s|m|h]`` for tests and demos.
A date-time picker sends a wall time without offset (``2027-01-01T00:00``) with the zone it showed:
``parse_wall_time`` reads it in that zone, refusing a time the spring gap skips and one the autumn
fold makes ambiguous, since "00:30 on the night clocks go back" names two instants.
``effective`` (or nothing) asks for no particular time: the deployment takes its
protocol's own effective time, or now once that has passed (hms.effective_time).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hms import clock
from hms.errors import BadInput

_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_REL = re.compile(r"^\+(\d{1,6})([smh])$")


EFFECTIVE = "effective"


def parse_requested(text: str | None, tz: ZoneInfo, now: datetime | None = None) -> datetime | None:
    """A requested activation time, or None for "the protocol's effective time" (no text, or ``effective``)."""
    if text is None or text.strip() in ("", EFFECTIVE):
        return None
    return parse_schedule(text, tz, now)


def parse_schedule(text: str, tz: ZoneInfo, now: datetime | None = None) -> datetime:
    now = (now or clock.now()).astimezone(tz)
    t = text.strip()
    if t == "now":
        return now.astimezone(UTC)
    if m := _REL.match(t):
        n, unit = int(m.group(1)), m.group(2)
        return (now + timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours"}[unit]: n})).astimezone(UTC)
    if m := _HHMM.match(t):
        hour, minute = int(m.group(1)), int(m.group(2))
        day = now.date()
        for _ in range(3):
            candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
            if not _exists(candidate, tz):
                raise BadInput(
                    f"{t} does not exist on {day.isoformat()} in {tz.key} (clocks jump forward); pick another time",
                    where="--schedule",
                )
            if candidate > now:
                return candidate.astimezone(UTC)
            day += timedelta(days=1)
        raise AssertionError("unreachable")
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise BadInput(
            f"cannot read {text!r}: use HH:MM, an ISO 8601 date-time with offset, 'now' or +N[s|m|h]",
            where="--schedule",
        ) from None
    if dt.tzinfo is None:
        raise BadInput(f"{text!r} has no timezone offset (e.g. {t}-05:00)", where="--schedule")
    return dt.astimezone(UTC)


def _exists(local: datetime, tz: ZoneInfo) -> bool:
    """False for wall times skipped by a DST jump (they do not survive a round trip through UTC)."""
    back = local.astimezone(UTC).astimezone(tz)
    return (back.hour, back.minute) == (local.hour, local.minute)


_WALL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")


def parse_wall_time(text: str, zone: str) -> datetime:
    """A picker's ``YYYY-MM-DDTHH:MM[:SS]`` as the wall time it is in the IANA zone ``zone`` (UTC out)."""
    try:
        tz = ZoneInfo(zone)
    except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        raise BadInput(f"unknown time zone {zone!r} (an IANA name, e.g. America/New_York)", where="zone") from None
    t = text.strip()
    if not _WALL.match(t):
        raise BadInput(f"{text!r} is not a date and time like 2027-01-01T00:00", where="effective_at")
    try:
        naive = datetime.fromisoformat(t)
    except ValueError:
        raise BadInput(f"{text!r} is not a calendar date and time", where="effective_at") from None
    early, late = naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)
    if not _exists(early, tz):
        raise BadInput(f"{t} does not exist in {zone} (clocks jump forward); pick another time", where="effective_at")
    if early.utcoffset() != late.utcoffset():
        raise BadInput(f"{t} happens twice in {zone} (clocks go back); pick another time or give an offset",
                       where="effective_at")
    return early.astimezone(UTC)

"""Schedulers' times: next midnight in the pipeline's timezone, right across DST."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from hms.errors import BadInput
from hms.schedule import parse_schedule

NY = ZoneInfo("America/New_York")


def test_midnight_is_the_next_local_midnight():
    now = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # 10:00 in New York
    assert parse_schedule("00:00", NY, now) == datetime(2026, 11, 24, 5, 0, tzinfo=UTC)


def test_a_time_already_past_today_means_tomorrow():
    now = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    assert parse_schedule("09:59", NY, now) == datetime(2026, 11, 24, 14, 59, tzinfo=UTC)
    assert parse_schedule("10:01", NY, now) == datetime(2026, 11, 23, 15, 1, tzinfo=UTC)


def test_midnight_after_the_autumn_change_uses_standard_time():
    now = datetime(2026, 10, 31, 12, 0, tzinfo=UTC)  # EDT; DST ends 2026-11-01 02:00
    assert parse_schedule("00:00", NY, now) == datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # still EDT at midnight
    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    assert parse_schedule("00:00", NY, now) == datetime(2026, 11, 2, 5, 0, tzinfo=UTC)  # EST


def test_a_wall_time_inside_the_spring_gap_is_refused():
    now = datetime(2027, 3, 13, 5, 0, tzinfo=UTC)  # midnight EST the day before DST starts (03-14 02:00)
    parse_schedule("02:30", NY, now)  # 13 March: fine
    now = datetime(2027, 3, 14, 5, 0, tzinfo=UTC)  # 00:00 EST on the 14th
    with pytest.raises(BadInput, match="does not exist on 2027-03-14"):
        parse_schedule("02:30", NY, now)


def test_iso_needs_an_offset_and_now_and_relative_work():
    now = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    assert parse_schedule("2026-12-01T00:00:00-05:00", NY, now) == datetime(2026, 12, 1, 5, tzinfo=UTC)
    assert parse_schedule("now", NY, now) == now
    assert parse_schedule("+5s", NY, now) == datetime(2026, 11, 23, 15, 0, 5, tzinfo=UTC)
    with pytest.raises(BadInput, match="no timezone offset"):
        parse_schedule("2026-12-01T00:00:00", NY, now)
    with pytest.raises(BadInput, match="cannot read"):
        parse_schedule("midnight", NY, now)
    with pytest.raises(BadInput, match="cannot read"):
        parse_schedule("24:00", NY, now)

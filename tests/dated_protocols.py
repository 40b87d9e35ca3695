"""Sample protocols whose ``metadata.effective_at`` is computed when the test runs, never today's calendar.

The sample files carry a fixed effective time that becomes the past one day; a test that used it as is
would change meaning on that day. These helpers copy a sample with the time set relative to now.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from hms import protocol
from tests.conftest import WILDFIRE


def effective(offset: timedelta) -> str:
    """An RFC 3339 time ``offset`` from now (negative: in the past), to the second."""
    return (datetime.now(UTC) + offset).isoformat(timespec="seconds")


def data(
    version: int,
    *,
    offset: timedelta = timedelta(hours=-1),
    pid: str | None = None,
    path: Path = WILDFIRE,
    **params: Any,
) -> dict[str, Any]:
    """The sample's normalized data at ``version``, effective ``offset`` from now, parameters changed."""
    d = copy.deepcopy(protocol.load(path).data)
    d["metadata"]["version"] = version
    d["metadata"]["effective_at"] = effective(offset)
    if pid is not None:
        d["metadata"]["id"] = pid
    d["parameters"].update(params)
    return d


def build(version: int, **kwargs: Any) -> protocol.Protocol:
    return protocol.from_data(data(version, **kwargs), f"test protocol v{version}")


def write(target: Path, version: int, **kwargs: Any) -> Path:
    """Write the protocol as YAML or JSON, by ``target``'s suffix."""
    d = data(version, **kwargs)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(d, indent=2) if target.suffix == ".json" else yaml.safe_dump(d, sort_keys=False))
    return target


EST = timezone(timedelta(hours=-5))


def future_effective_at() -> str:
    """A Wednesday 12:00 (-05:00) at least 30 days from now: a time every scan rule accepts."""
    day = (datetime.now(UTC) + timedelta(days=30)).astimezone(EST).date()
    day += timedelta(days=(2 - day.weekday()) % 7)
    return datetime(day.year, day.month, day.day, 12, tzinfo=EST).isoformat()


def packed_for_later(sample: Path, tmp_path: Path) -> Path:
    """``sample`` effective at :func:`future_effective_at`, packed by ``hms policy pack``; the package's path."""
    from hms.cli import main

    d = yaml.safe_load(sample.read_text())
    d["metadata"]["effective_at"] = future_effective_at()
    src = tmp_path / f"{sample.stem}.json"
    src.write_text(json.dumps(d))
    pkg = tmp_path / f"{sample.stem}.tgz"
    assert main(["policy", "pack", str(src), "--out", str(pkg)]) == 0
    return pkg

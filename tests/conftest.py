"""Shared fixtures. Every test gets its own HMS_HOME (and so its own SQLite registry)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hms.registry import db

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = ROOT / "include" / "protocols"
WILDFIRE = PROTOCOLS / "wildfire-aid-2024.yml"
CHIP = PROTOCOLS / "chip-income-cap.yml"

pytest_plugins = ["tests.fixtures_registry"]


@pytest.fixture(autouse=True)
def hms_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "hms-home"
    monkeypatch.setenv("HMS_HOME", str(home))
    monkeypatch.delenv("HMS_DATABASE_URL", raising=False)
    db.reset_engines()
    yield home
    db.reset_engines()

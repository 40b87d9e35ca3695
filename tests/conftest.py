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


@pytest.fixture(scope="session")
def test_settings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.deploy_helpers import write_config

    return write_config(tmp_path_factory.mktemp("settings") / "pipeline.yml")


def attest_caches() -> None:
    """Signers and trusted keys are cached per process: a test's own HMS_HOME has keys of its own."""
    from hms.attest import envelopes, keys

    keys.reset()
    envelopes.reset()


@pytest.fixture(autouse=True)
def hms_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test_settings: Path) -> Iterator[Path]:
    """Its own registry per test, and the repository's pipeline settings without their freeze windows.

    The repository's windows are calendar dates and a weekly Sunday slot: a test that meets one by the
    date it happens to run on would have an expiry date. Tests about freeze windows write their own,
    built from the clock (tests/deploy_helpers.write_config).

    Nothing of the developer's shell decides who acts (hms.identity): an exported HMS_ACTOR (refused) or
    pipeline secret is dropped, so CLI calls act as this process's OS account unless a test says otherwise.
    """
    home = tmp_path / "hms-home"
    monkeypatch.setenv("HMS_HOME", str(home))
    monkeypatch.setenv("HMS_PIPELINE_CONFIG", str(test_settings))
    monkeypatch.delenv("HMS_DATABASE_URL", raising=False)
    # Who acts is the OS account unless a test logs in: no developer's token or HMS_ACTOR leaks in.
    monkeypatch.setenv("HMS_CREDENTIALS", str(tmp_path / "hms-credentials.json"))
    for var in (
        "HMS_TOKEN",
        "HMS_API",
        "HMS_ACTOR",
        "HMS_PIPELINE_SECRET",
        "HMS_PIPELINE_SECRET_FILE",
        "HMS_RUN_ID",
        "HMS_AIRFLOW_URL",
        "HMS_AIRFLOW_USER",
        "HMS_AIRFLOW_PASSWORD",
    ):  # a rollback would note a real run
        monkeypatch.delenv(var, raising=False)
    db.reset_engines()
    attest_caches()
    yield home
    db.reset_engines()
    attest_caches()

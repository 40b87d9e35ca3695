"""Registry fixtures: every registry test runs on SQLite and, when HMS_TEST_POSTGRES_URL is set, on PostgreSQL.

Each PostgreSQL test gets a database of its own (created from the server URL, dropped after), so tests never
see each other's rows and the migration runs from scratch every time.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hms import identity
from hms.registry import db


def _postgres_database() -> Iterator[str]:
    server = os.environ.get("HMS_TEST_POSTGRES_URL")
    if not server:
        pytest.skip("HMS_TEST_POSTGRES_URL not set (scripts/ci-postgres.sh starts a server)")
    name = f"hms_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        db.reset_engines()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest, hms_home, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, migrated registry; HMS_DATABASE_URL points at it so CLI calls in the test use it too.

    An admin (ops) has applied the test settings as its pinned policy: a shared registry is never
    bootstrapped from a file (hms.pinned_policy), and both backends start with the same audit chain.
    A module about the audit chain itself sets ``PIN_POLICY = False`` to start from an empty chain.
    """
    pin = getattr(request.module, "PIN_POLICY", True)
    db.reset_engines()
    if request.param == "sqlite":
        url = f"sqlite:///{hms_home / 'registry.db'}"
        monkeypatch.setenv("HMS_DATABASE_URL", url)
        if pin:
            pin_test_settings()
        yield url
        db.reset_engines()
    else:
        gen = _postgres_database()
        url = next(gen)
        monkeypatch.setenv("HMS_DATABASE_URL", url)
        if pin:
            pin_test_settings()
        yield url
        next(gen, None)


def pin_test_settings() -> None:
    from hms import pinned_policy

    path = Path(os.environ["HMS_PIPELINE_CONFIG"])
    with db.session_scope() as s:
        pinned_policy.apply(s, path.read_text(), str(path), actor="ops")


@contextlib.contextmanager
def direct_writer() -> Iterator[None]:
    """In-process CLI calls that write the registry directly, as whoever may: on SQLite (embedded) the OS
    account; on PostgreSQL (shared) only the pipeline, since people act through the HMS API (hms.identity).
    For tests whose subject is what a command does, not who does it."""
    if not identity.shared_registry():
        yield
        return
    with identity.acting_as(identity.Principal.pipeline()):
        yield

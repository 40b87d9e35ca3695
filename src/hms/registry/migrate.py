"""Alembic, driven from code: the migration scripts ship inside the package, no alembic.ini to find."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0007"  # the newest revision in migrations/versions (a test holds this to Alembic's own head)
_PG_LOCK = 7_400_117  # advisory lock id: concurrent first starts (replicas, pods) migrate one at a time


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def at_head(engine: Engine) -> bool:
    """One cheap query instead of loading Alembic: every CLI call and every replica start pays for this."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
    except Exception:
        return False


def upgrade_engine(engine: Engine) -> None:
    if at_head(engine):
        return
    from alembic import command

    cfg = alembic_config()
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")

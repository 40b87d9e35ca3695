"""Where the registry lives, answered without importing SQLAlchemy (a quarter of a second of a CLI's start).

``hms policy simulate`` asks whether a registry exists before it looks for prod's version to compare with;
a machine without one (a policy analyst's laptop) must not pay for the database layer, nor get a database
file created by the question.
"""

from __future__ import annotations

import os
from pathlib import Path

from hms import home

SQLITE_PREFIX = "sqlite:///"


def hms_home() -> Path:
    return Path(home.path())


def database_url() -> str:
    return os.environ.get("HMS_DATABASE_URL") or f"{SQLITE_PREFIX}{hms_home() / 'registry.db'}"


def registry_present() -> bool:
    """Whether a registry exists to read from, without creating one (a SQLite file is made on first use)."""
    url = database_url()
    if not url.startswith("sqlite"):
        return True  # a server database: connecting says whether it is there
    path = url.split("?", 1)[0].removeprefix(SQLITE_PREFIX)
    return path in ("", ":memory:") or not url.startswith(SQLITE_PREFIX) or Path(path).is_file()

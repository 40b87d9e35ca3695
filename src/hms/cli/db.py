"""``hms db upgrade``: create or migrate the registry schema (Alembic)."""

from __future__ import annotations

import argparse

from hms.registry import db


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="registry database")
    ps = p.add_subparsers(dest="db_command", required=True)
    up = ps.add_parser("upgrade", help="apply migrations up to the newest (idempotent)")
    up.set_defaults(handler=cmd_upgrade)


def cmd_upgrade(args: argparse.Namespace) -> int:
    db.upgrade()
    print(f"[db] ✅ registry at head ({db.database_url(redacted=True)})")
    return 0

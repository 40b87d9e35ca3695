"""Where the registry lives and how to talk to it.

``HMS_DATABASE_URL`` (PostgreSQL in docker-compose and CI) or the embedded default
``sqlite:///$HMS_HOME/registry.db``. Every write transaction is serialized the same
way on both: SQLite starts it with ``BEGIN IMMEDIATE`` (one writer, readers in WAL
mode keep reading); PostgreSQL code paths lock the rows they change
(``store.lock_environment``, the audit head). The schema is brought to head the
first time a process touches a database, so a fresh ``HMS_HOME`` just works; ``hms db
upgrade`` does the same explicitly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from hms.errors import BadInput
from hms.registry import location

_engines: dict[str, Engine] = {}
PRINCIPAL_KEY = "hms_principal"  # Session.info: who a transaction acts for (hms.registry.audit records it)
_lock = threading.Lock()


def database_url(*, redacted: bool = False) -> str:
    url = location.database_url()
    if redacted:
        try:
            return make_url(url).render_as_string(hide_password=True)
        except Exception:
            return "<unparseable HMS_DATABASE_URL>"
    return url


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        # Writers take the write lock up front (no upgrade deadlocks); readers (the decision service's
        # polling) begin deferred so they never wait for a writer.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("hms_read_only") else "BEGIN IMMEDIATE")


def get_engine(url: str | None = None) -> Engine:
    """One engine per URL per process, with the schema at head."""
    url = url or database_url()
    with _lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        try:
            parsed = make_url(url)
        except Exception as e:
            raise BadInput(f"HMS_DATABASE_URL is not a database URL: {e}", where="HMS_DATABASE_URL") from None
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            _sqlite_setup(engine)
        else:
            engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
        from hms.registry.migrate import upgrade_engine

        try:
            upgrade_engine(engine)
        except OperationalError as e:  # unreachable, wrong credentials, no such database: one line, no traceback
            engine.dispose()
            reason = str(e.orig or e).strip().splitlines()[0]
            where = parsed.render_as_string(hide_password=True)
            raise BadInput(f"cannot open the registry at {where}: {reason}", where="HMS_DATABASE_URL") from None
        _engines[url] = engine
        return engine


def reset_engines() -> None:
    """Forget cached engines (tests switching HMS_HOME; a forked child must not share pooled connections)."""
    with _lock:
        for e in _engines.values():
            e.dispose()
        _engines.clear()


@contextmanager
def session_scope(url: str | None = None, *, read_only: bool = False,
                  principal: dict[str, str | None] | None = None) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back on any exception.

    ``principal`` (hms.identity.Principal.to_dict) is who the transaction acts for: every audit entry it
    appends records how that actor was authenticated, and for the pipeline the run it acted for.
    """
    engine = get_engine(url)
    if read_only:
        engine = engine.execution_options(hms_read_only=True)
    session = sessionmaker(bind=engine, expire_on_commit=False)()
    if principal is not None:
        session.info[PRINCIPAL_KEY] = principal
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def upgrade(url: str | None = None) -> str:
    """Bring the schema to head; returns the revision."""
    engine = get_engine(url)
    with engine.connect() as c:
        return str(c.execute(text("SELECT version_num FROM alembic_version")).scalar())

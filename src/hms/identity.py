"""Who is acting: the one authenticated principal behind every change, never a name typed in.

A principal is established by something the caller cannot type:

- ``airflow-token``: a person who holds a valid Airflow JWT. The HMS API (Airflow's api-server, or
  ``hms api serve``) takes the user from the token; the CLI with ``hms login`` / ``HMS_TOKEN`` is its client.
- ``os-account``: embedded mode only (SQLite under HMS_HOME, one machine). The kernel's account of the
  process (``geteuid``, not ``$USER``/``$LOGNAME``, which any shell sets). That account owns the registry
  file, so it is one person: it can give one approval, and as pusher it gives none.
- ``pipeline``: the pipeline's own identity. Code running inside an Airflow worker or the api-server
  sets it for the ``hms`` commands it runs in-process (``acting_as``); a child process (a pod, the
  rollback script) presents the pipeline secret (``HMS_PIPELINE_SECRET``), checked against the secret
  file only the pipeline's account can read. The pipeline never reviews and never applies policy.

``HMS_ACTOR`` used to be an identity and is now refused (exit 2): a variable anyone sets proves nothing.
``--user`` may still be given, but must name the principal (exit 2 otherwise).

In a shared install (``HMS_DATABASE_URL`` points at PostgreSQL) people do not hold the registry's
credentials: their commands go through the HMS API, and a direct write without the pipeline secret is
refused. docs/identity.md has the model and what it does not protect (the embedded account can edit its
own SQLite file; issue "signed evidence" closes that).
"""

from __future__ import annotations

import contextlib
import contextvars
import hmac
import os
import pwd
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hms.errors import BadInput

Via = Literal["airflow-token", "os-account", "pipeline"]
PIPELINE_NAME = "airflow"
SECRET_ENV = "HMS_PIPELINE_SECRET"
SECRET_FILE_ENV = "HMS_PIPELINE_SECRET_FILE"


@dataclass(frozen=True)
class Principal:
    """An authenticated actor: its name (what the audit records), how it was authenticated, and for the
    pipeline the run (and person) it acts for."""

    name: str
    via: Via
    run_id: str | None = None
    on_behalf_of: str | None = None

    @property
    def is_pipeline(self) -> bool:
        return self.via == "pipeline"

    @property
    def kind(self) -> Literal["person", "pipeline"]:
        return "pipeline" if self.is_pipeline else "person"

    @classmethod
    def person(cls, name: str, via: Via = "airflow-token") -> Principal:
        return cls(name, via)

    @classmethod
    def pipeline(cls, run_id: str | None = None, on_behalf_of: str | None = None) -> Principal:
        return cls(PIPELINE_NAME, "pipeline", run_id, on_behalf_of)

    def describe(self) -> str:
        """How the audit log and the CLI name it: ``alice (airflow-token)``, ``airflow for run R``."""
        if self.is_pipeline:
            return self.name + (f" for run {self.run_id}" if self.run_id else "") + (
                f" on behalf of {self.on_behalf_of}" if self.on_behalf_of else "")
        return f"{self.name} ({self.via})"

    def to_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "via": self.via, "run_id": self.run_id, "on_behalf_of": self.on_behalf_of}


_acting: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("hms_principal", default=None)


@contextlib.contextmanager
def acting_as(principal: Principal) -> Iterator[None]:
    """Run in-process commands as ``principal`` (the pipeline's operators, the API's handlers)."""
    token = _acting.set(principal)
    try:
        yield
    finally:
        _acting.reset(token)


def acting() -> Principal | None:
    """The principal in-process code set with ``acting_as`` (None outside one)."""
    return _acting.get()


def os_account() -> str:
    """The kernel's name for this process's effective user (what ``getpass`` reads from $USER is typed in)."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a container user without a passwd entry
        return f"uid-{uid}"


def shared_registry() -> bool:
    """Whether people share this registry (PostgreSQL) rather than one account owning a SQLite file."""
    url = os.environ.get("HMS_DATABASE_URL", "")
    return bool(url) and not url.startswith("sqlite")


def secret_file() -> Path:
    from hms.registry.location import hms_home

    return Path(os.environ.get(SECRET_FILE_ENV) or hms_home() / "pipeline.secret")


def pipeline_secret() -> str:
    """The pipeline's secret, created (mode 0600) on first use; only the pipeline's side reads it."""
    path = secret_file()
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(value + "\n")
    return value


def pipeline_env(run_id: str | None = None) -> dict[str, str]:
    """What a child ``hms`` process needs to act as the pipeline (for ``run_id``)."""
    return {SECRET_ENV: pipeline_secret(), **({"HMS_RUN_ID": run_id} if run_id else {})}


def current() -> Principal:
    """The principal of this process for direct registry access (the CLI without an API token)."""
    acting = _acting.get()
    if acting is not None:
        return acting
    if os.environ.get("HMS_ACTOR"):
        raise BadInput("HMS_ACTOR is not an identity: who acts is authenticated (hms login / HMS_TOKEN for a "
                       "person, the pipeline secret for the pipeline); unset HMS_ACTOR", where="HMS_ACTOR")
    presented = os.environ.get(SECRET_ENV)
    if presented is not None:
        try:
            expected = secret_file().read_text(encoding="ascii").strip()
        except OSError as e:
            raise BadInput(f"{SECRET_ENV} is set but the pipeline secret cannot be read: {e.strerror}",
                           where=str(secret_file())) from None
        if not expected or not hmac.compare_digest(presented.strip().encode(), expected.encode()):
            raise BadInput(f"{SECRET_ENV} does not match the pipeline secret", where=SECRET_ENV)
        return Principal.pipeline(os.environ.get("HMS_RUN_ID") or None)
    if shared_registry():
        raise BadInput("this registry is shared (PostgreSQL): people act through the HMS API, authenticated — run "
                       "`hms login` (or set HMS_TOKEN and HMS_API) and run the command again", where="identity")
    return Principal.person(os_account(), "os-account")


def direct() -> Principal | None:
    """``current()``, or None where this process may not write the registry itself (a person on a shared
    registry, who reads it and acts through the API)."""
    try:
        return current()
    except BadInput as e:
        if e.where == "identity":
            return None
        raise


def claimed(user: str | None, principal: Principal, where: str = "--user") -> str:
    """The principal's name; a ``--user`` that names someone else is exit 2 (an identity is not typed in)."""
    from hms.approvals import same_person

    if user is not None and not same_person(user, principal.name):
        raise BadInput(f"{user!r} is not who is acting: you are authenticated as {principal.describe()} "
                       "(log in as that person: hms login)", where=where)
    return principal.name

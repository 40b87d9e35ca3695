"""The CLI as a client of the HMS API: an Airflow token, kept where only its owner can read it.

``hms login`` asks Airflow's api-server for a token (``POST /auth/token``) and stores it with the API's
address in ``$HMS_CREDENTIALS`` (default ``~/.config/hms/credentials.json``), mode 0600; scripts set
``HMS_TOKEN`` (and ``HMS_API``) instead. With a token, the changing commands (push, review, deploy,
rollback, abort, config apply) go to the API, which takes the user from the token — the registry never
sees a name the client typed. Without one, the CLI acts on an embedded registry as the OS account
(hms.identity).

A pipeline step never uses a person's token: code acting as the pipeline (hms.identity.acting_as, or
the pipeline secret in the environment) stays in direct mode.

Light on purpose: the standard library's HTTP client and the pydantic models — no SQLAlchemy, no httpx
(~0.1 s to import each) — so ``hms rule rollback`` as a client starts fast (bench/bench_service.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from hms.errors import BadInput, CheckFailed, HmsError

CREDENTIALS_ENV = "HMS_CREDENTIALS"
TOKEN_ENV = "HMS_TOKEN"
API_ENV = "HMS_API"
API_PATH = "/hms/api"  # where the HMS API lives under Airflow's api-server (and under `hms api serve`)
TIMEOUT = 60.0  # a deploy may wait for a Kubernetes rollout; a rollback for its switch instant
Out = TypeVar("Out", bound=BaseModel)


def credentials_path() -> Path:
    if os.environ.get(CREDENTIALS_ENV):
        return Path(os.environ[CREDENTIALS_ENV])
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "hms" / "credentials.json"


@dataclass(frozen=True)
class Credentials:
    """An Airflow base URL (``http://host:8080``) and a token it issued."""

    api: str
    token: str
    user: str | None = None

    def save(self) -> Path:
        """Write with mode 0600 from the first byte (never world-readable, not even for an instant)."""
        path = credentials_path()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an older file keeps its mode through O_TRUNC
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"api": self.api, "token": self.token, "user": self.user}, f)
        return path


def _stored() -> Credentials | None:
    path = credentials_path()
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    if st.st_mode & 0o077:
        raise BadInput(f"the token file is readable by others (mode {st.st_mode & 0o777:o}); chmod 600 it or "
                       "log in again", where=str(path))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Credentials(str(data["api"]), str(data["token"]), data.get("user"))
    except (ValueError, KeyError, TypeError):
        raise BadInput("not a credentials file written by hms login; log in again", where=str(path)) from None


def credentials() -> Credentials | None:
    """``HMS_TOKEN`` (with ``HMS_API`` or the stored address), else what ``hms login`` stored, else None."""
    token = os.environ.get(TOKEN_ENV)
    if token:
        api = os.environ.get(API_ENV) or (_stored() or Credentials("", "")).api
        if not api:
            raise BadInput(f"{TOKEN_ENV} is set but not {API_ENV} (the Airflow/HMS API base URL)", where=API_ENV)
        return Credentials(api.rstrip("/"), token.strip())
    stored = _stored()
    if stored and os.environ.get(API_ENV):
        return Credentials(os.environ[API_ENV].rstrip("/"), stored.token, stored.user)
    return stored


def active() -> Client | None:
    """The API client this command uses, or None for direct mode (no token, or acting as the pipeline)."""
    from hms import identity

    if identity.acting() is not None or os.environ.get(identity.SECRET_ENV):
        return None
    c = credentials()
    return Client(c) if c else None


def _request(method: str, url: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
    """One HTTP exchange: (status, body); an unreachable server is exit 2 naming the URL."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/json", "Accept": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:  # http(s) only: checked by the callers
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        raise BadInput(f"cannot reach {url}: {getattr(e, 'reason', e)}", where=API_ENV) from None


def login(api: str, username: str, password: str) -> Credentials:
    """Exchange a user name and password for an Airflow token (``POST /auth/token``)."""
    api = api.rstrip("/")
    if not api.startswith(("http://", "https://")):
        raise BadInput(f"not an http(s) URL: {api!r}", where="--api")
    body = json.dumps({"username": username, "password": password}).encode()
    status, raw = _request("POST", f"{api}/auth/token", body, {})
    if status in (401, 403):
        raise BadInput(f"Airflow refused the login of {username!r} (wrong user name or password)", where="login")
    if status >= 400:
        raise BadInput(f"Airflow answered {status} to the login: {raw[:200].decode(errors='replace')}", where="login")
    try:
        token = json.loads(raw).get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        raise BadInput("Airflow's answer to the login carries no access_token", where="login")
    return Credentials(api, token, username)


@dataclass(frozen=True)
class Client:
    creds: Credentials

    def call(self, method: str, path: str, body: BaseModel | None, out: type[Out]) -> Out:
        """One API call; a refusal becomes the HmsError (and exit code) the command would raise locally."""
        url = f"{self.creds.api}{API_PATH}{path}"
        if not url.startswith(("http://", "https://")):
            raise BadInput(f"not an http(s) URL: {self.creds.api!r}", where=API_ENV)
        data = body.model_dump_json().encode() if body is not None else None
        status, raw = _request(method, url, data, {"Authorization": f"Bearer {self.creds.token}"})
        if status >= 400:
            raise refusal(status, raw.decode(errors="replace"))
        try:
            return out.model_validate_json(raw)
        except ValidationError as e:
            raise HmsError(f"the HMS API answered something else than {out.__name__}: {e}", where=url) from None

    def post(self, path: str, body: BaseModel, out: type[Out]) -> Out:
        return self.call("POST", path, body, out)

    def get(self, path: str, out: type[Out]) -> Out:
        return self.call("GET", path, None, out)


def refusal(status: int, text: str) -> HmsError:
    try:
        data = json.loads(text)
    except ValueError:
        data = {}
    detail = str(data.get("detail") or text[:300] or f"HTTP {status}")
    field = data.get("field")
    if status == 401:
        detail += " (hms login)"
    code = data.get("exit_code", 1 if status in (403, 409) else 2)
    cls = CheckFailed if code == 1 else BadInput
    return cls(detail, where=str(field) if field else None)

"""A running HMS API (``hms api serve``) and real Airflow tokens for tests that act as authenticated people.

Tokens are minted by Airflow's own ``JWTGenerator`` with the secret the server shares, exactly what an
api-server hands out at ``POST /auth/token`` for the simple auth manager (``sub`` = the user name). Each
clerk is then a separate principal with nothing typed in: ``as_user("alice")`` is the environment of a
shell in which alice logged in.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from hms.chaos import free_port

HMS = str(Path(sys.executable).parent / "hms")
AUDIENCE = "apache-airflow"


def airflow_token(user: str, secret: str, *, valid_for: float = 600, audience: str = AUDIENCE) -> str:
    from airflow.api_fastapi.auth.tokens import JWTGenerator

    gen = JWTGenerator(secret_key=secret, valid_for=valid_for, audience=audience, issuer=None, algorithm="GUESS")
    return gen.generate({"sub": user, "role": "user"})


@dataclass
class Api:
    """The standalone HMS API of one test's registry."""

    url: str
    secret: str
    env: dict[str, str]

    def token(self, user: str, **kw: float) -> str:
        return airflow_token(user, self.secret, **kw)

    def as_user(self, user: str) -> dict[str, str]:
        """The environment of a shell where ``user`` logged in (``HMS_TOKEN`` + ``HMS_API``)."""
        return {**self.env, "HMS_TOKEN": self.token(user), "HMS_API": self.url}

    def hms(self, user: str | None, *args: str, check: bool = True, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
        """``hms …`` as ``user`` through the API (None: the OS account, directly on the embedded registry)."""
        env = self.as_user(user) if user else self.env
        r = subprocess.run([HMS, *args], env=env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"hms {' '.join(args)} as {user} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def post(self, user: str, path: str, body: dict) -> httpx.Response:
        auth = {"Authorization": f"Bearer {self.token(user)}"}
        return httpx.post(f"{self.url}/hms/api{path}", json=body, headers=auth, timeout=60)


@contextmanager
def running_api(env: dict[str, str]) -> Iterator[Api]:
    """``hms api serve`` on a free port for the registry in ``env``; stopped afterwards."""
    secret = secrets.token_hex(32)
    port = free_port()
    server_env = {**env, "AIRFLOW__API_AUTH__JWT_SECRET": secret, "AIRFLOW__API_AUTH__JWT_AUDIENCE": AUDIENCE}
    log = Path(env["HMS_HOME"]).parent / f"api-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([HMS, "api", "serve", "--port", str(port)], env=server_env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/hms/api/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"hms api serve did not start:\n{log.read_text()}")
            time.sleep(0.1)
        # A person's shell: no pipeline secret (which keeps a process in direct mode, as the pipeline)
        client_env = {k: v for k, v in env.items()
                      if k not in ("HMS_TOKEN", "HMS_API", "HMS_PIPELINE_SECRET", "HMS_RUN_ID")}
        yield Api(url, secret, client_env)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def cli_env(hms_home: Path, **extra: str) -> dict[str, str]:
    """The environment of an ``hms`` subprocess on this test's registry, as the OS account."""
    e = {k: v for k, v in os.environ.items() if k not in ("HMS_TOKEN", "HMS_API", "HMS_ACTOR")}
    return {**e, "HMS_HOME": str(hms_home), "HMS_BIN": HMS, **extra}

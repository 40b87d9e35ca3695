"""Reliability fixtures: the real `hms` command in a subprocess, real `hms serve` replicas, a registry per test.

Scenarios here drive the product the way ops and attackers would: through the CLI, include/rollback.sh
and HTTP, against real SQLite (per-test HMS_HOME from tests/conftest.py) and, where marked, real PostgreSQL.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from hms.chaos import free_port
from hms.cli import main
from tests.conftest import ROOT, WILDFIRE
from tests.deploy_helpers import record_checks_for, review_as, write_config

HMS = str(Path(sys.executable).parent / "hms")
ROLLBACK = ROOT / "include" / "rollback.sh"
FAMILY = {"household_size": 4, "household_income": 40000, "county_fire_declared": True}
PID = "wildfire-aid-2024"


@pytest.fixture
def env(hms_home: Path, tmp_path: Path) -> dict[str, str]:
    """Environment for `hms` subprocesses: this test's registry (HMS_DATABASE_URL if the test set one). They act
    as this process's OS account (hms.identity)."""
    e = {**os.environ, "HMS_HOME": str(hms_home), "HMS_BIN": HMS}
    e["HMS_PIPELINE_CONFIG"] = str(write_config(tmp_path / "pipeline.yml"))
    return e


def hms(env: dict[str, str], *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([HMS, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"hms {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """`hms` through its own entry point in this process: same parser, handlers and exit codes as the
    console script, without paying an interpreter start per call (for scenarios with dozens of cases)."""
    monkeypatch.setenv("HMS_PIPELINE_CONFIG", env["HMS_PIPELINE_CONFIG"])

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        if check and code != 0:
            raise AssertionError(f"hms {' '.join(args)} exited {code}\n{out.out}\n{out.err}")
        return subprocess.CompletedProcess(list(args), code, out.out, out.err)

    return run


@pytest.fixture
def sh(env: dict[str, str]) -> Run:
    """`hms` as a separate process (what ops, include/rollback.sh and Airflow run)."""
    return functools.partial(hms, env)


def as_json(run: Run, *args: str) -> dict:
    return json.loads(run(*args, "--json").stdout)


def variant_file(tmp_path: Path, version: int, max_payment: int) -> Path:
    """The wildfire sample as another version with another cap (so answers tell versions apart)."""
    p = tmp_path / f"wildfire-v{version}.yml"
    text = WILDFIRE.read_text().replace("version: 3", f"version: {version}")
    p.write_text(text.replace("max_payment: 5000", f"max_payment: {max_payment}"))
    return p


def approve(ref: str) -> None:
    """Two clerks' approvals of a registry reference, in-process (one OS account is one clerk on the CLI)."""
    review_as(ref, "alice", "legal")
    review_as(ref, "bob", "budget")


def ready(ref: str) -> None:
    """What every deploy needs: passing test, scan and chaos recorded (in-process, as the pipeline's steps
    leave them) and two clerks' approvals (in-process: see approve)."""
    record_checks_for(ref)
    approve(ref)


def audit_ok(run: Run) -> dict:
    r = run("audit", "verify", "--json", check=False)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == 0 and out["ok"], f"audit chain broken: {out}"
    return out


def audit_entries(run: Run) -> list[dict]:
    return as_json(run, "audit", "log", "--limit", "100000")["entries"]


@contextlib.contextmanager
def serve(env: dict[str, str], environment: str = "prod") -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = subprocess.Popen([HMS, "serve", "--env", environment, "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None, "hms serve did not start"
                time.sleep(0.05)
        yield url, proc
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
            proc.wait()

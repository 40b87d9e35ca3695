"""The docker tier's shared pieces: the engine check, the image ``make image`` builds, and a docker runner."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

IMAGE = os.environ.get("HMS_TEST_IMAGE", "hms:0.1.0")


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({r.returncode}): {r.stderr[-2000:]}")
    return r


@pytest.fixture(scope="session")
def engine() -> None:
    if shutil.which("docker") is None or docker("info", check=False, timeout=30).returncode != 0:
        pytest.skip("no Docker engine answers (apt-get install docker.io; scripts/docker-engine.sh starts dockerd)")


def _image_build(script: str) -> subprocess.Popen[str]:
    """scripts/SCRIPT started at once, in the background: the image builds mostly wait on disk and network."""
    return subprocess.Popen(
        ["bash", str(ROOT / "scripts" / script)], cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _image_ref(build: subprocess.Popen[str]) -> str:
    """The image reference a script started by _image_build printed, once it has finished."""
    out, err = build.communicate(timeout=1200)
    assert build.returncode == 0, err[-3000:]
    return out.strip()


@pytest.fixture(scope="session")
def postgres_build(engine: None) -> subprocess.Popen[str]:
    """The compose stack's PostgreSQL image, started at once beside the hms image's build."""
    return _image_build("postgres-image.sh")


@pytest.fixture(scope="session")
def image(engine: None, postgres_build: subprocess.Popen[str]) -> str:
    """``make image`` (scripts/build-image.sh) for real; a warm rebuild takes ~35 s."""
    build = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-image.sh")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "IMAGE": IMAGE},
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    print(build.stdout)
    return IMAGE


@pytest.fixture(scope="session")
def postgres_image(postgres_build: subprocess.Popen[str]) -> str:
    return _image_ref(postgres_build)


@pytest.fixture(scope="session")
def redis_build(engine: None) -> subprocess.Popen[str]:
    """The celery profile's Redis image (scripts/redis-image.sh), started at once like PostgreSQL's."""
    return _image_build("redis-image.sh")


@pytest.fixture(scope="session")
def redis_image(redis_build: subprocess.Popen[str]) -> str:
    return _image_ref(redis_build)

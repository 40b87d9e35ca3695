"""The image, built for real by ``make image`` (scripts/build-image.sh) on a real Docker engine.

What the static checks (tests/unit/test_container_files.py) cannot see: that the pinned set installs with
its hashes from the host's wheelhouse, that hms, Airflow and the OPA engine run inside, that the decision
service answers its health check from a container, and that nothing the build needed to reach PyPI — the
wheelhouse, pip, the proxy's CA certificate of this machine's bundle — is in what would be published.
Skipped, saying why, where no Docker engine answers (scripts/docker-engine.sh starts one where it can).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.docker.conftest import docker

pytestmark = pytest.mark.docker

HOST_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def run_in(image: str, script: str) -> str:
    return docker("run", "--rm", "--network", "none", image, "bash", "-c", script).stdout


def test_hms_airflow_and_the_opa_engine_run_in_the_image_as_the_manifests_user(image):
    out = run_in(
        image,
        "id -u; python --version; airflow version; hms --version; "
        "python -c 'import opa_bindings, hms.web.app; print(\"imports ok\")'",
    )
    uid, python, airflow, hms_version, imports = out.split("\n")[:5]
    assert uid == "10001"
    assert python.startswith("Python 3.11.")
    assert airflow.strip() == "3.3.2"
    assert hms_version.startswith("hms ")
    assert imports == "imports ok"


def test_the_image_holds_the_runtime_lock_exactly_and_no_test_tool(image):
    frozen = run_in(
        image,
        "python -m pip --version 2>/dev/null || echo no-pip; "
        "python -c 'import importlib.metadata as m; "
        'print("\\n".join(sorted(f"{d.name.lower()}=={d.version}" for d in m.distributions())))\'',
    )
    assert frozen.startswith("no-pip")  # pip is removed: the published image installs nothing more
    installed = {line.split("==")[0].replace("_", "-") for line in frozen.split("\n")[1:] if "==" in line}
    lock = (ROOT / "requirements" / "runtime.lock").read_text()
    pinned = {
        line.split("==")[0].split("[")[0].lower().replace("_", "-")
        for line in lock.splitlines()
        if "==" in line and not line.startswith((" ", "#"))
    }
    assert pinned <= installed
    assert installed - pinned <= {"hms", "opa-golib-python-bindings", "setuptools"}
    for tool in ("pytest", "selenium", "ruff", "kmock", "openfisca-core", "hypothesis"):
        assert tool not in installed, tool


def test_nothing_the_build_used_to_reach_pypi_is_in_the_published_image(image):
    container = docker("create", image).stdout.strip()
    try:
        raw = subprocess.run(["docker", "export", container], capture_output=True, timeout=300, check=True).stdout
    finally:
        docker("rm", container)
    names, bundle = [], b""
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for member in tar:
            names.append(member.name)
            if member.name == "etc/ssl/certs/ca-certificates.crt" and member.isfile():
                bundle = tar.extractfile(member).read()  # type: ignore[union-attr]
    assert not [n for n in names if "wheelhouse" in n or n.startswith("tmp/hms") or n.startswith("tmp/requirements")]
    if HOST_BUNDLE.is_file():  # this machine's bundle carries the TLS proxy's CA; Debian's in the image does not
        host = _certificates(HOST_BUNDLE.read_bytes())
        mine = _certificates(bundle)
        local_only = host - mine
        assert local_only, "expected this machine's bundle to hold a certificate Debian's does not (the proxy CA)"
        body = raw  # the whole filesystem, every file: the proxy CA's certificate is nowhere in it
        for pem in local_only:
            assert pem.split(b"\n")[1] not in body


def _certificates(pem: bytes) -> set[bytes]:
    out, cur = set(), []
    for line in pem.splitlines():
        if line.startswith(b"-----BEGIN CERTIFICATE"):
            cur = [line]
        elif cur:
            cur.append(line)
            if line.startswith(b"-----END CERTIFICATE"):
                out.add(b"\n".join(cur))
                cur = []
    return out


def test_the_decision_service_answers_its_health_check_from_a_container(image):
    name = f"hms-test-serve-{os.getpid()}"
    docker(
        "run",
        "-d",
        "--name",
        name,
        "-p",
        "127.0.0.1::8000",
        image,
        "bash",
        "-c",
        "hms db upgrade >/dev/null && exec hms serve --env staging --host 0.0.0.0 --port 8000",
    )
    try:
        port = json.loads(docker("inspect", name).stdout)[0]["NetworkSettings"]["Ports"]["8000/tcp"][0]["HostPort"]
        deadline, last = time.monotonic() + 90, None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as r:
                    assert r.status == 200
                    return
            except OSError as e:
                last = e
                time.sleep(1)
        logs = docker("logs", name, check=False)
        raise AssertionError(f"no /healthz answer in 90 s ({last}); logs: {logs.stdout[-2000:]}{logs.stderr[-2000:]}")
    finally:
        docker("rm", "-f", name, check=False)

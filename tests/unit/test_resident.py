"""The resident simulator (hms.resident): a handed-off ``hms policy simulate`` is the caller's process in all
that it can tell — output, exit status, working directory, environment, umask, signals — and only its
owner's ``policy simulate`` is ever run by it.

Real processes throughout: ``hms simulator start`` in a short ``HMS_HOME`` (a Unix socket's path is at most
108 bytes; pytest's temporary directories are deeper), the ``hms`` script (``python -m hms``) as a caller.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hms import bundle, protocol
from hms.resident import client, server, wire
from tests.conftest import WILDFIRE

ROOT = Path(__file__).resolve().parents[2]


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "HMS_HOME": str(home), **extra}  # PYTHONPATH as the tier set it (a shifted clock)


def _hms(home: Path, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hms", *args], env=_env(home, **env), cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def resident(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A running resident simulator in its own short HMS_HOME; stopped (and waited for) afterwards."""
    home = Path(tempfile.mkdtemp(prefix="hms-r", dir="/tmp"))
    monkeypatch.setenv("HMS_HOME", str(home))
    started = _hms(home, "simulator", "start", "--idle", "5m", "--json")
    assert started.returncode == 0, started.stderr
    pid = json.loads(started.stdout)["pid"]
    try:
        yield home
    finally:
        _hms(home, "simulator", "stop")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(home, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _runs(home: Path) -> int:
    status = client.request(str(home), "status")
    assert status is not None
    return status["runs"]


def _pkg(where: Path) -> Path:
    pkg = where / "wildfire.tgz"
    bundle.write_atomic(pkg, bundle.build(protocol.load(WILDFIRE)))
    return pkg


def _figures(out: str) -> dict:
    result = json.loads(out)
    result.pop("seconds")
    return result


def test_a_handed_off_simulation_prints_what_a_fresh_process_prints(resident: Path) -> None:
    pkg = _pkg(resident)
    args = ("policy", "simulate", str(pkg), "--population", "synthetic:50000:3", "--baseline", "none", "--json")
    before = _runs(resident)
    handed = _hms(resident, *args)
    assert handed.returncode == 0, handed.stderr
    assert _runs(resident) == before + 1  # the resident ran it
    here = _hms(resident, *args, HMS_RESIDENT="0")
    assert here.returncode == 0, here.stderr
    assert _runs(resident) == before + 1  # HMS_RESIDENT=0: the caller's own process
    assert _figures(handed.stdout) == _figures(here.stdout)


def test_bad_input_exits_2_with_its_message_through_the_resident(resident: Path) -> None:
    pkg = _pkg(resident)
    before = _runs(resident)
    r = _hms(resident, "policy", "simulate", str(pkg), "--population", str(resident / "none.parquet"))
    assert r.returncode == 2
    assert r.stderr == f"hms: error: {resident / 'none.parquet'}: population file not found\n"
    assert _runs(resident) == before + 1


def test_the_run_takes_the_callers_directory_and_umask(resident: Path) -> None:
    work = resident / "work"
    work.mkdir()
    _pkg(work)
    r = _hms(resident, "policy", "simulate", "wildfire.tgz", "--population", "synthetic:20000:1",
             "--baseline", "none", "--report", "out/report.html", cwd=work)
    assert r.returncode == 0, r.stderr
    assert "[simulate] report: out/report.html" in r.stdout
    assert (work / "out" / "report.html").read_text().startswith("<!")  # relative to the caller's directory
    code = "import os, sys; os.umask(0o077); sys.argv[0] = 'hms'; from hms.launch import run; run()"
    again = subprocess.run([sys.executable, "-c", code, "policy", "simulate", "wildfire.tgz", "--population",
                            "synthetic:20000:1", "--baseline", "none", "--report", "private/report.html"],
                           env=_env(resident), cwd=work, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert (work / "private").stat().st_mode & 0o777 == 0o700  # made with the caller's umask, not the resident's


def test_the_run_takes_the_callers_environment(resident: Path) -> None:
    pkg = _pkg(resident)
    elsewhere = resident / "no-registry-here"
    r = _hms(resident, "policy", "simulate", str(pkg), "--population", "synthetic:20000:1", "--json",
             HMS_DATABASE_URL=f"sqlite:///{elsewhere}/registry.db")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["baseline"] is None  # no registry at the caller's URL: no default baseline
    assert not elsewhere.exists()


def _long_run(home: Path) -> subprocess.Popen[str]:
    """A simulation of 40M synthetic households handed to the resident, once its child runs (seconds of work)."""
    proc = subprocess.Popen([sys.executable, "-m", "hms", "policy", "simulate", str(_pkg(home)), "--population",
                             "synthetic:40000000:1", "--baseline", "none"],
                            env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while client.request(str(home), "status")["running"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


def test_ctrl_c_reaches_the_run_and_exits_130(resident: Path) -> None:
    proc = _long_run(resident)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "hms: interrupted" in err


def test_a_run_killed_by_a_signal_reports_128_plus_the_signal(resident: Path) -> None:
    proc = _long_run(resident)
    proc.send_signal(signal.SIGTERM)  # forwarded to the run, which has no handler for it: it dies of it
    proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM


def _raw(home: Path, req: dict) -> tuple[str, str]:
    """One run request as the ``hms`` script sends it, with this process's streams; the first answer."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(wire.socket_path(str(home)))
    with sock:
        socket.send_fds(sock, [json.dumps(req).encode() + b"\n"], [0, 1, 2])
        return next(wire.lines(sock), ("", ""))


def _request(argv: list[str]) -> dict:
    return json.loads(wire.request("run", argv))


def test_it_runs_only_policy_simulate(resident: Path) -> None:
    kind, why = _raw(resident, _request(["rule", "rollback", "wildfire-aid-2024", "--env", "prod"]))
    assert (kind, why) == ("refused", "it runs only policy simulate")
    assert not wire.served(["rule", "rollback"]) and not wire.served(["policy", "simulate", "--help"])
    assert wire.served(["policy", "simulate", "x.tgz"])


def test_a_caller_on_another_interpreter_or_package_is_refused(resident: Path) -> None:
    req = _request(["policy", "simulate", "x.tgz"])
    kind, why = _raw(resident, {**req, "executable": "/usr/bin/python3|/usr"})
    assert kind == "refused" and "interpreter" in why
    kind, why = _raw(resident, {**req, "package": "/elsewhere/hms"})
    assert kind == "refused" and "package" in why
    assert _runs(resident) == 0


def test_a_changed_source_file_makes_children_stale(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text("x = 1\n")
    fp = server.Fingerprint("py", "pkg", server._mtimes([str(source)]), server._mtimes([str(tmp_path)]))
    assert fp.stale() is None
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 1_000_000))
    assert fp.stale() == "its hms sources changed since it started"
    fp = server.Fingerprint("py", "pkg", server._mtimes([str(source)]), server._mtimes([str(tmp_path)]))
    (tmp_path / "new-package.dist-info").mkdir()
    assert fp.stale() == "the installed packages changed since it started"


def test_no_resident_means_the_caller_runs_the_command(tmp_path: Path) -> None:
    assert client.hand_off(["policy", "simulate", "x.tgz"]) is None  # this test's HMS_HOME has none
    assert client.connect(str(tmp_path / ("deep" * 30))) is None  # a socket path longer than sun_path allows


def test_status_and_stop(resident: Path) -> None:
    status = _hms(resident, "simulator", "status", "--json")
    assert json.loads(status.stdout)["running"] is True
    again = _hms(resident, "simulator", "start", "--json")
    assert json.loads(again.stdout)["started"] is False  # one per HMS_HOME
    stop = _hms(resident, "simulator", "stop")
    assert stop.returncode == 0 and "stops" in stop.stdout
    deadline = time.monotonic() + 20
    while Path(wire.socket_path(str(resident))).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "not running" in _hms(resident, "simulator", "status").stdout


def test_an_idle_resident_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    home = Path(tempfile.mkdtemp(prefix="hms-r", dir="/tmp"))
    try:
        assert _hms(home, "simulator", "start", "--idle", "1s").returncode == 0
        deadline = time.monotonic() + 30
        while Path(wire.socket_path(str(home))).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(wire.socket_path(str(home))).exists()
        assert "idle for 1 s: exiting" in (home / "run" / "simulator.log").read_text()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_a_bad_idle_is_exit_2(tmp_path: Path) -> None:
    r = _hms(tmp_path, "simulator", "start", "--idle", "soon")
    assert r.returncode == 2 and "--idle 'soon'" in r.stderr


def test_two_starts_at_once_leave_one_resident() -> None:
    home = Path(tempfile.mkdtemp(prefix="hms-r", dir="/tmp"))
    try:
        argv = [sys.executable, "-m", "hms", "simulator", "start", "--json"]
        both = [subprocess.Popen(argv, env=_env(home), stdout=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [json.loads(p.communicate(timeout=120)[0]) for p in both]
        assert [p.returncode for p in both] == [0, 0]
        assert len({o["pid"] for o in outs}) == 1  # both callers found the same resident
        pid = outs[0]["pid"]
        assert _hms(home, "simulator", "stop").returncode == 0
        deadline = time.monotonic() + 20
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_a_run_asked_of_a_stopping_resident_runs_in_the_callers_process(resident: Path) -> None:
    long_run = _long_run(resident)
    pkg = _pkg(resident)
    try:
        assert _hms(resident, "simulator", "stop").returncode == 0  # it leaves once the long run ends
        assert client.request(str(resident), "status")["stopping"] is True
        r = _hms(resident, "policy", "simulate", str(pkg), "--population", "synthetic:20000:1", "--baseline", "none")
        assert r.returncode == 0, r.stderr
        assert "did not take this (it is stopping); running it here" in r.stderr
    finally:
        long_run.send_signal(signal.SIGINT)
        long_run.communicate(timeout=60)

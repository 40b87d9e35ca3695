"""`make down` and a test stack's stop leave no Airflow process behind (devtools.airflow_stack.terminate).

Real processes, no Airflow: a "component" in its own session with a child that ignores SIGTERM (SIGKILLed
after the grace) and a grandchild that left both its tree and the group (its parent exited, it started a
session of its own) — found by the marker in its environment, as the sweep finds anything that escaped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from devtools import airflow_stack as stack

READY = "import os, sys; open(os.path.join(sys.argv[1], str(os.getpid())), 'w').close()"
STUBBORN = f"import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); {READY}; time.sleep(600)"
ESCAPED = f"import time; {READY}; time.sleep(600)"
LAUNCHER = (  # starts the escapee in a session of its own and exits: init adopts it
    "import subprocess, sys; subprocess.Popen([sys.executable, '-c', sys.argv[2], sys.argv[1]], start_new_session=True)"
)
COMPONENT = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', sys.argv[2], sys.argv[1]])\n"
    "subprocess.run([sys.executable, '-c', sys.argv[3], sys.argv[1], sys.argv[4]], check=True)\n"
    "time.sleep(600)\n"
)


def _pids(folder: Path, n: int) -> list[int]:
    deadline = time.monotonic() + 30
    while len(list(folder.iterdir())) < n:
        assert time.monotonic() < deadline, "the test's processes did not start"
        time.sleep(0.05)
    return [int(p.name) for p in folder.iterdir()]


def test_terminate_kills_the_tree_what_ignores_sigterm_and_what_escaped_it(tmp_path: Path) -> None:
    home, ready = tmp_path / "airflow", tmp_path / "ready"
    ready.mkdir()
    env = {**os.environ, stack.MARKER: str(home)}
    component = subprocess.Popen(
        [sys.executable, "-c", COMPONENT, str(ready), STUBBORN, LAUNCHER, ESCAPED], env=env, start_new_session=True
    )
    stubborn_and_escaped = _pids(ready, 2)
    try:
        assert {p.pid for p in stack._marked(home)} >= {component.pid, *stubborn_and_escaped}
        t = time.monotonic()
        stack.terminate(home, [component.pid], grace=1)
        assert time.monotonic() - t < 10
        component.wait(timeout=5)
        assert not any(stack._alive(pid) for pid in stubborn_and_escaped)
        assert stack._marked(home) == []
    finally:
        for pid in stubborn_and_escaped:
            if stack._alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while stack._alive(child.pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE  # exited, not reaped yet: dead to us
    child.wait()
    assert not stack._alive(child.pid)

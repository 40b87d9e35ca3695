"""``hms simulator start|stop|status``: the resident simulator of this ``HMS_HOME`` (hms.resident).

``start`` leaves a process behind that has imported what ``hms policy simulate`` needs; from then on the
``hms`` script hands it each ``policy simulate`` call (``HMS_RESIDENT=0`` runs one in the caller's process
instead). It exits after ``--idle`` without a run, on ``stop``, or when its sources change.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from hms.cli import emit
from hms.errors import BadInput, HmsError
from hms.registry.location import hms_home
from hms.resident import client, wire

START_TIMEOUT = 60.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulator", help="a resident process that runs `hms policy simulate` without its imports")
    ps = p.add_subparsers(dest="simulator_command", required=True)
    start = ps.add_parser("start", help="start this HMS_HOME's resident simulator (nothing if one runs)")
    start.add_argument("--idle", default="30m", help="exit after this long without a run (90s, 30m, 8h; default 30m)")
    start.add_argument("--json", action="store_true")
    start.set_defaults(handler=cmd_start)
    for name, handler, text in (("status", cmd_status, "whether one runs, since when, how many runs"),
                                ("stop", cmd_stop, "stop it once its running commands end")):
        q = ps.add_parser(name, help=text)
        q.add_argument("--json", action="store_true")
        q.set_defaults(handler=handler)


def parse_idle(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    value, unit = text[:-1], text[-1:]
    if unit not in units or not value.replace(".", "", 1).isdigit() or float(value) <= 0:
        raise BadInput(f"--idle {text!r}: a positive number of s, m or h (90s, 30m, 8h)")
    return float(value) * units[unit]


def cmd_start(args: argparse.Namespace) -> int:
    idle = parse_idle(args.idle)
    home = str(hms_home())
    path = wire.socket_path(home)
    if len(path) > wire.MAX_PATH:
        raise BadInput(f"{path}: too long for a Unix socket ({wire.MAX_PATH} characters); use a shorter HMS_HOME")
    running = client.request(home, "status")
    deadline = time.monotonic() + START_TIMEOUT
    while running is not None and running.get("stopping") and time.monotonic() < deadline:
        time.sleep(0.1)  # one that is leaving (stopped, or its sources changed): start anew once it has
        running = client.request(home, "status")
    if running is not None:
        emit(args, {"ok": True, "started": False, **running},
             [f"[simulator] ✅ already running (pid {running['pid']}, {running['runs']} runs) at {path}"])
        return 0
    run = Path(wire.run_dir(home))
    run.mkdir(parents=True, exist_ok=True)
    os.chmod(run, 0o700)
    log = run / "simulator.log"
    t = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hms.resident.server", "--home", str(home), "--idle", str(idle)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                                close_fds=True)
    status = _wait_until_up(home, proc, log)
    waited = time.perf_counter() - t
    emit(args, {"ok": True, "started": True, "waited_s": round(waited, 3), **status},
         [f"[simulator] ✅ resident pid {status['pid']} at {path} (ready in {waited:.1f} s; exits after "
          f"{args.idle} idle); `hms policy simulate` now runs in it"])
    return 0


def _wait_until_up(home: str, proc: subprocess.Popen, log: Path) -> dict:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        status = client.request(home, "status")
        if status is not None and status.get("spare_ready"):
            return status  # its first run is as warm as the next
        if proc.poll():  # 0: another `start` won the lock, and its resident will answer
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise HmsError(f"the resident simulator exited {proc.returncode} while starting: " + " | ".join(tail))
        time.sleep(0.05)
    proc.terminate()
    raise HmsError(f"the resident simulator did not answer within {START_TIMEOUT:.0f} s (log: {log})")


def cmd_status(args: argparse.Namespace) -> int:
    status = client.request(str(hms_home()), "status")
    if status is None:
        emit(args, {"ok": True, "running": False},
             ["[simulator] not running: `hms policy simulate` runs in its own process"])
        return 0
    up = time.time() - status["since"]
    emit(args, {"ok": True, **status, "running_commands": status["running"], "running": True},
         [f"[simulator] ✅ pid {status['pid']}, up {up:.0f} s, {status['runs']} runs, {status['running']} running; "
          f"imports took {status['preload_ms']} ms; socket {status['socket']}"])
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    answer = client.request(str(hms_home()), "stop")
    if answer is None:
        emit(args, {"ok": True, "stopped": False}, ["[simulator] not running"])
        return 0
    emit(args, {"ok": True, "stopped": True, **answer},
         [f"[simulator] ✅ pid {answer['pid']} stops" + (f" once its {answer['running']} running commands end"
                                                         if answer["running"] else "")])
    return 0

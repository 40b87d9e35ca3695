"""Start several real `hms` commands at the same instant, each in its own process.

A plain ``Popen`` of the console script spreads the starts over the ~0.3 s each interpreter
needs to import; these racers import the command group and open the registry first, then all
sleep until one shared wall-clock instant and run ``hms.cli.main`` — so the transactions
really overlap, which is what a concurrency promise has to survive.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_RACER = """
import sys, time
from importlib import import_module
from hms.cli import COMMANDS, main
from hms.registry.db import get_engine
argv = sys.argv[1:]
import_module(COMMANDS[argv[0]])
import hms.deployments, hms.api.models, hms.client  # noqa: the heavy imports happen before the start line
get_engine()
print("ready", flush=True)
start = float(sys.stdin.readline())
delay = start - time.time()
if delay < 0:
    print(f"racer missed the start by {-delay:.3f}s", file=sys.stderr)
time.sleep(max(0.0, delay))
sys.exit(main(argv))
"""


@dataclass(frozen=True)
class Finish:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def race(env: Mapping[str, str] | Sequence[Mapping[str, str]], commands: Sequence[Sequence[str]], *,
         start_at: float | None = None) -> list[Finish]:
    """Run each argv (without the leading ``hms``) in its own process, all starting at one instant.

    ``env`` is every racer's environment, or one per command (two clerks, each logged in as themselves).

    The racers report ready (imported, registry open) first; the instant is then ``start_at`` (a
    ``time.time()`` value) or 0.3 s later, so a busy machine delays the race instead of spoiling it.
    """
    envs = [env] * len(commands) if isinstance(env, Mapping) else list(env)
    procs = [
        subprocess.Popen([sys.executable, "-c", _RACER, *argv], env=dict(e), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for argv, e in zip(commands, envs, strict=True)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready", p.communicate(timeout=60)
    start = start_at if start_at is not None else time.time() + 0.3
    assert start > time.time() + 0.05, "the racers were ready only after the instant they had to race at"
    for p in procs:  # every racer gets the instant before any of them is waited for
        assert p.stdin is not None
        p.stdin.write(f"{start:.6f}\n")
        p.stdin.flush()
    out = []
    for argv, p in zip(commands, procs, strict=True):
        stdout, stderr = p.communicate(timeout=120)
        out.append(Finish(list(argv), p.returncode, stdout, stderr))
    missed = [f.stderr for f in out if "missed the start" in f.stderr]
    assert not missed, f"the racers did not start together: {missed}"
    return out

"""``hms ci run``: start the policy pipeline of a protocol and follow it to its end, one line per stage.

Two ways to run, one output. When an Airflow API server answers, the run is
triggered and followed through Airflow's public REST API (v2) — the core speaks
HTTP to it like any client and imports nothing from Airflow. Without a server,
the same DAG runs on this machine under Airflow's ``dag.test`` in a child
process (``devtools.local_run`` of the checkout: development tooling, not part
of the plugin or the image), which reports each finished task as a JSON line.
Either way the follower turns task results (their XComs: the JSON every ``hms``
command writes) into the seed's stage lines and the exit code is the run's
outcome: 0 success, 1 failed.

Run ids name their bundle and never burn. A bundle's first run is ``bundle-<sha12>`` of the protocol as
packed here (bundles are reproducible) — the same id the intake gives it, so the intake and ``hms ci run``
never both start a bundle. A later run of the same bundle (the first ended failed, or was rolled back) is
``bundle-<sha12>-<UTC yyyymmddThhmmss>`` of the moment it starts (``hms.clock``), so it starts instead of
meeting Airflow's "409 Conflict … Unique constraint violation". While a run of the bundle is still queued or
running, asking again follows that run: a bundle is never started twice at once (and ``max_active_runs=1``
keeps one run per protocol at a time); a bundle whose newest run succeeded is followed too, not deployed again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hms.errors import BadInput

if TYPE_CHECKING:
    from hms.airflow_api import AirflowApi

TERMINAL_RUN = ("success", "failed")
# Task states worth a line: finished ones, and "deferred" (a human-paced wait has started).
REPORTED = ("success", "failed", "upstream_failed", "skipped", "deferred")
RUN_ID_PREFIX = "bundle-"
RUN_ID_STAMP = "%Y%m%dT%H%M%S"  # UTC, to the second: Airflow's run ids allow no other punctuation we need
ACTIVE_RUN = ("queued", "running")


def run_id_for(sha256: str, started_at: datetime | None = None) -> str:
    """The pipeline run id of a bundle: ``bundle-<sha12>`` for its first run, whoever starts it (the intake's
    idempotency key), ``bundle-<sha12>-<UTC yyyymmddThhmmss>`` for a later run started at ``started_at``."""
    base = RUN_ID_PREFIX + sha256[:12]  # 12 hex digits, as hms prints short hashes
    if started_at is None:
        return base
    if started_at.tzinfo is None:
        raise ValueError("run_id_for needs an aware started_at (hms.clock.now())")
    return f"{base}-{started_at.astimezone(UTC).strftime(RUN_ID_STAMP)}"


def bundle_prefix_of_run(run_id: str) -> str | None:
    """The 12-hex-digit bundle prefix a run id names (``bundle-<sha12>`` or ``bundle-<sha12>-<stamp>``), else None
    (Airflow's ``manual__…`` ids, ``hms promote --run-id`` values)."""
    if not run_id.startswith(RUN_ID_PREFIX):
        return None
    sha, _, stamp = run_id.removeprefix(RUN_ID_PREFIX).partition("-")
    if len(sha) != 12 or any(c not in "0123456789abcdef" for c in sha):
        return None
    if stamp:
        try:
            datetime.strptime(stamp, RUN_ID_STAMP)
        except ValueError:
            return None
    return sha


def runs_bundle(run: dict[str, Any], sha256: str) -> bool:
    """Whether an Airflow run (its REST representation) deploys ``sha256``: its id names the bundle, or its conf
    gives it (``sha256``: the intake and ``hms ci``; ``bundle``: the trigger form's pick by full hash)."""
    if bundle_prefix_of_run(str(run.get("dag_run_id", ""))) == sha256[:12]:
        return True
    conf = run.get("conf") or {}
    return sha256 in (conf.get("sha256"), str(conf.get("bundle") or "").removeprefix("sha256:"))


def dag_id_for(protocol_id: str) -> str:
    return f"policy_{protocol_id}"


@dataclass
class TaskEvent:
    """One task reached a state worth reporting; ``result`` is its JSON return value, if any."""

    task_id: str
    state: str
    result: Any = None
    run_id: str | None = None


@dataclass
class StageLines:
    """Turns task events into the seed's console lines (``[build] 📦 …``, ``[deploy] staging ✅ …``)."""

    environments: list[str]
    tz: str | None = None  # the pipeline's timezone: schedulers think in it (None: this machine's)
    deployed: list[str] = field(default_factory=list)

    def line(self, ev: TaskEvent) -> str | None:
        group, _, task = ev.task_id.rpartition(".")
        r = ev.result if isinstance(ev.result, dict) else {}
        if ev.state in ("failed", "upstream_failed"):
            if ev.state == "upstream_failed" or ev.task_id == "fail_run":
                return None
            return f"[{_stage(group or task)}] ❌ {ev.task_id} failed"
        if ev.state == "deferred":
            if ev.task_id == "review.approvals":
                return "[review] ⏳ waiting for the clerks' approvals of this bundle hash"
            if task == "wait_for_effective_time":
                return "[flip] ⏳ waiting for the effective time"
            return None
        if ev.state != "success":
            return None
        if ev.task_id == "build.bundle":
            made = "created" if r.get("new") else "already recorded"
            return f"[build] 📦 {r.get('id', '?')} bundle {made} sha256:{str(r.get('sha256', ''))[:12]}"
        if ev.task_id == "test.cases_and_simulation":
            n = len(r.get("cases", []))
            sim = r.get("simulation") or {}
            cost = f"; simulated cost ${sim['cost']:,.0f} of cap ${sim['cap']:,.0f}" if sim.get("cap") else ""
            return f"[test] ✅ {n} tests{cost}"
        if ev.task_id == "test.replay":
            return _replay_line(r)
        if ev.task_id == "compliance.scan":
            counts = r.get("counts", {})
            order = r.get("rule_sets") or sorted(counts)
            warned = len(r.get("warnings") or [])
            review = f" ⚠ {warned} for review" if warned else ""
            return "[comp] ✅ " + " ".join(f"{k}({counts.get(k, 0)})" for k in order) + review
        if ev.task_id == "review.approvals":
            return f"[review] ✅ {r.get('summary', 'approved')}"
        if task == "deploy" and group in self.environments:
            self.deployed.append(f"{group} ✅")
            return None
        if task == "chaos":
            return "[chaos] ✅ survived faults"
        if ev.task_id == "build.schedule_check":
            words = f" ({r['note']})" if r.get("note") else ""
            when = _local(r.get("activate_at", "?"), self.tz)
            return f"[build] 🗓 {r.get('environment', '?')} comes into force no earlier than {when}{words}"
        if task == "schedule":
            at = r.get("activate_at", "?")
            if r.get("state") == "live":  # the effective time had passed: in force now, not retroactively
                late = " (effective date passed; not retroactive)" if r.get("late") else ""
                return f"[deploy] {' '.join(self.deployed)} {group} ✅ live from {_local(at, self.tz)}{late}"
            return f"[deploy] {' '.join(self.deployed)} {group} SCHEDULED@{_local(at, self.tz)}"
        if ev.task_id == "flip.verify_live":
            env = self.environments[-1]
            return f"[flip] {env} ✅ live: {r.get('summary', '')}"
        if ev.task_id == "publish":
            return "[publish] ✅ released"
        if ev.task_id == "rollback":
            # Its result is the rollback's own lines: a run that failed before its first deploy undid nothing.
            said = ev.result if isinstance(ev.result, list) else []
            if any("nothing to undo" in str(line) for line in said):
                return "[rollback] ✅ no environment was touched; nothing to roll back"
            return "[rollback] ✅ every environment this run touched is back on its previous version"
        return None


def _replay_line(r: dict[str, Any]) -> str:
    """``[replay] ✅ 12 of 1,000 of prod's logged decisions would change`` (and what could not be replayed)."""
    if not r.get("logged"):
        return f"[replay] ✅ no decisions logged in {r.get('environment', '?')} since {r.get('since', '?')}"
    skipped = r.get("unreplayable_decisions") or 0
    rest = f"; {skipped:,} not replayable (fields the log does not keep in clear)" if skipped else ""
    return (f"[replay] ✅ {r.get('changed', 0):,} of {r.get('replayed', 0):,} of {r.get('environment', '?')}'s "
            f"logged decisions would change{rest}")


def _stage(group: str) -> str:
    return {"compliance": "comp", "cases_and_simulation": "test"}.get(group, group)


def _local(iso: str, tz: str | None) -> str:
    from zoneinfo import ZoneInfo

    try:
        return datetime.fromisoformat(iso).astimezone(ZoneInfo(tz) if tz else None).isoformat(timespec="seconds")
    except ValueError:
        return iso


# ---------------------------------------------------------------------------------------------------------------
# Through Airflow's REST API (hms.airflow_api)


def follow_rest(
    api: AirflowApi, dag_id: str, run_id: str, *, timeout: float, poll: float = 1.0, patience: float = 120.0
) -> Iterator[TaskEvent | str]:
    """Yield each task's reportable state once, in the order seen, then the run's final state.

    An API server that stops answering (restarted, overloaded) is waited for up to ``patience``
    seconds: the run goes on in the scheduler meanwhile, and following it must not fail because of it.
    """
    import httpx

    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    silent_since: float | None = None
    while True:
        try:
            state = api.run_state(dag_id, run_id)
            for task_id, ts in api.task_states(dag_id, run_id).items():
                if ts in REPORTED and seen.get(task_id) != ts:
                    result = api.result(dag_id, run_id, task_id) if ts == "success" else None
                    seen[task_id] = ts
                    yield TaskEvent(task_id, ts, result, run_id)
            silent_since = None
        except httpx.HTTPError:
            silent_since = silent_since or time.monotonic()
            if time.monotonic() - silent_since > patience:
                yield "unreachable"
                return
            time.sleep(poll)
            continue
        if state in TERMINAL_RUN:
            yield state
            return
        if time.monotonic() > deadline:
            yield "timeout"
            return
        time.sleep(poll)


# ---------------------------------------------------------------------------------------------------------------
# In-process (no Airflow server): dag.test in a child process

EVENT_PREFIX = "HMS-EVENT "


def follow_local(repo: Path, dag_id: str, conf: dict[str, Any], *, timeout: float) -> Iterator[TaskEvent | str]:
    """Run the DAG under ``dag.test`` in a child process and yield its task events as they happen.

    The child is ``devtools.local_run`` of the checkout ``repo`` (on its PYTHONPATH beside the plugins): a
    directory without it (an installed package, the image) cannot run a DAG here — that is bad input.
    """
    if not (repo / "devtools" / "local_run.py").is_file():
        raise BadInput(f"no Airflow API server, and {repo} has no devtools/local_run.py to run the DAG here "
                       "(run from a checkout, or give --airflow-url)")
    home = Path(os.environ.get("HMS_CI_AIRFLOW_HOME", Path(os.environ.get("HMS_HOME", repo / ".hms")) / "airflow-ci"))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(repo / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(repo / "plugins"),
        "PYTHONPATH": os.pathsep.join([str(repo / "plugins"), str(repo), os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        ),
    }
    env.pop("HMS_ACTOR", None)  # not an identity: the run's steps act as the pipeline (hms.identity)
    home.mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True)
    log = (home / "local-run.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.local_run", dag_id, json.dumps(conf)],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert proc.stdout is not None
    started = time.monotonic()
    final = "failed"
    try:
        for raw in proc.stdout:
            at = raw.find(EVENT_PREFIX)
            if at < 0:
                continue
            # raw_decode: other output of the child may share the line after the JSON object
            msg, _ = json.JSONDecoder().raw_decode(raw[at + len(EVENT_PREFIX) :])
            if "run_state" in msg:
                final = msg["run_state"]
                continue
            yield TaskEvent(msg["task_id"], msg["state"], msg.get("result"), msg.get("run_id"))
            if time.monotonic() - started > timeout:
                proc.kill()
                final = "timeout"
                break
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    if proc.returncode and final == "success":
        final = "failed"
    yield final


# ---------------------------------------------------------------------------------------------------------------


@dataclass
class CiRun:
    """What ``hms ci run`` was asked for, resolved against the repository and the pipeline config."""

    repo: Path
    protocol_id: str
    protocol_path: Path
    sha256: str
    conf: dict[str, Any]
    started_as: str | None = None  # the run id ``execute`` started or followed (``choose_run``)

    @property
    def dag_id(self) -> str:
        return dag_id_for(self.protocol_id)

    @property
    def run_id(self) -> str:
        """The run ``execute`` started or followed; before it ran, the id of the bundle's first run."""
        return self.started_as or run_id_for(self.sha256)


def choose_run(api: AirflowApi, dag_id: str, sha256: str) -> tuple[str, str | None]:
    """(run id, why it is followed — None: start it) for running ``sha256`` through ``dag_id``.

    The newest run of the bundle decides: queued or running — follow it (a bundle never runs twice at once);
    success — follow it (it took the bundle through; asking again is not a reason to deploy it again); failed —
    start a new run stamped with now, as a first run does when there is none (``bundle-<sha12>``). The old ids
    stay the old runs': nothing burns.
    """
    first = run_id_for(sha256)
    mine = [r for r in api.runs(dag_id) if runs_bundle(r, sha256)]
    if not any(r.get("dag_run_id") == first for r in mine):
        older = api.run(dag_id, first)  # beyond the newest 100
        mine += [older] if older is not None else []
    if not mine:
        return first, None
    newest = mine[0]
    if newest.get("state") in ACTIVE_RUN:
        return str(newest["dag_run_id"]), "is already running this bundle; following it"
    if newest.get("state") == "success":
        return str(newest["dag_run_id"]), "already took this bundle through (success); following it"
    from hms import clock

    return run_id_for(sha256, clock.now()), None


def plan(repo: Path, protocol_id: str | None, conf: dict[str, Any]) -> list[CiRun]:
    """One CiRun per protocol file (or the one asked for); an unknown id or a broken file is bad input."""
    from hms import bundle
    from hms.protocol import load

    files = sorted((repo / "include" / "protocols").glob("*.y*ml"))
    runs = []
    for path in files:
        p = load(path)
        if protocol_id and p.id != protocol_id:
            continue
        runs.append(CiRun(repo, p.id, path, bundle.sha256_hex(bundle.build(p)), conf))
    if protocol_id and not runs:
        known = ", ".join(sorted(load(f).id for f in files)) or "none"
        raise BadInput(f"--protocol {protocol_id}: no such protocol in include/protocols (known: {known})")
    return runs


def execute(
    run: CiRun,
    environments: list[str],
    *,
    tz: str | None = None,
    api: AirflowApi | None,
    timeout: float,
    out: Callable[[str], None],
    on_event: Callable[[TaskEvent], None] | None = None,
) -> str:
    """Start (or join) the run, print its stage lines, return the final state.

    ``on_event`` sees every task event after its line is printed (the demo's clerks approve when
    the review starts waiting).
    """
    lines = StageLines(environments, tz=tz)
    run_id = run.run_id
    if api is not None:
        run_id, followed = choose_run(api, run.dag_id, run.sha256)
        run.started_as = run_id
        # False from trigger: a run with this id appeared meanwhile (another start of this bundle): follow it.
        created = followed is None and api.trigger(run.dag_id, run_id, run.conf)
        how = "started" if created else followed or "was just started by someone else; following it"
        out(f"[ci] {run.dag_id} run {run_id} {how} on Airflow at {api.url}")
        events = follow_rest(api, run.dag_id, run_id, timeout=timeout)
    else:
        out(f"[ci] {run.dag_id}: no Airflow API server; running the DAG here (Airflow dag.test)")
        events = follow_local(run.repo, run.dag_id, run.conf, timeout=timeout)
    final = "failed"
    for ev in events:
        if isinstance(ev, str):
            final = ev
            break
        run_id = ev.run_id or run_id
        text = lines.line(ev)
        if text:
            out(text)
        if ev.task_id == "build.bundle" and ev.state == "success" and isinstance(ev.result, dict):
            got = ev.result.get("sha256", "")
            if got and got != run.sha256:
                out(f"[ci] note: the worker packed sha256:{got[:12]}, not sha256:{run.sha256[:12]} as here")
        if on_event is not None:
            on_event(ev)
    run.started_as = run_id
    mark = "✅" if final == "success" else "❌"
    out(f"[ci] {mark} {run.dag_id} run {run_id}: {final}")
    return final

"""A real, local Airflow stack for tests, benches and ``make up``: api-server, scheduler,
dag-processor and triggerer as separate processes, like production — not ``dag.test``.

Why a launcher of our own instead of ``airflow standalone``: standalone picks its own
port and passwords, prints them to stdout, and leaves no handle to kill one component
(the reliability tests kill the scheduler or the triggerer mid-run) or to stop it all
without orphans. Each component runs in its own process group (LocalExecutor task
processes live in the scheduler's group), and every process carries the marker
``HMS_AIRFLOW_STACK=<home>`` so ``stop`` can sweep anything that escaped its group.

Configuration is passed as ``AIRFLOW__…`` environment variables (``stack.env``): SQLite,
LocalExecutor, SimpleAuthManager with known users, the repository's dags/ and plugins/,
short parse/heartbeat intervals. ``HMS_HOME`` / ``HMS_DATABASE_URL`` / ``HMS_PIPELINE_CONFIG``
of the caller pass through, so the tasks and triggers use the caller's registry.

Import side effects: none; imports stdlib, httpx, psutil and hms.airflow_api (the project's one
Airflow REST client: the stack's own requests go through it; ``client`` is for tests' other calls).

CLI (from the repository root, PYTHONPATH=plugins:.)::

    python -m devtools.airflow_stack up [--home DIR] [--port N]   # start, print the UI URL and logins
    python -m devtools.airflow_stack status [--home DIR]
    python -m devtools.airflow_stack down [--home DIR]             # stops what `up` started (<home>/stack.json)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import psutil

from hms.airflow_api import AirflowApi
from hms.errors import BadInput
from hms.protocol_heads import protocol_files

REPO = Path(__file__).resolve().parents[1]
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
CLERKS = ("alice", "bob", "carol", "dana")
TERMINAL = {"success", "failed"}
MARKER = "HMS_AIRFLOW_STACK"
INTAKE_DAG = "hms_intake"  # paused when first created (intake.py); `up` and the demo turn it on


class StackError(RuntimeError):
    """The stack did not come up, or a request to it failed (message says which component / URL)."""


def _airflow_bin() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (exited, not yet reaped) is dead for our purposes."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # someone else's process: it exists
        return True


def processes_carrying(name: str, value: str) -> list[psutil.Process]:
    """Processes (other than this one) whose environment sets ``name`` to ``value``: what a process group
    cannot find — children that started sessions of their own, or were re-parented when their parent died."""
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if proc.environ().get(name) == value:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):  # gone meanwhile (zombies too), or not ours
            continue
    return found


def _marked(home: Path) -> list[psutil.Process]:
    """Processes carrying this stack's marker."""
    return processes_carrying(MARKER, str(home))


def _trees(pids: Iterable[int]) -> list[psutil.Process]:
    """Each process and all its descendants (a component's LocalExecutor workers and their task processes)."""
    procs = []
    for pid in pids:
        try:
            top = psutil.Process(pid)
            procs += [top, *top.children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return procs


def _signal_each(procs: Iterable[psutil.Process], sig: int) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.send_signal(sig)


def _parse_time(text: str) -> float:
    """An ISO timestamp from the health endpoint as epoch seconds."""
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def terminate(home: Path | None, pgids: Iterable[int], grace: float = 15.0) -> None:
    """SIGTERM each component and its descendants, SIGKILL what is left after ``grace`` (and the rest of each
    component's process group: a task process its parent lost), then (given the stack's ``home``) sweep every
    process still carrying its marker."""
    pgids = list(pgids)
    procs = _trees(pgids)
    _signal_each(procs, signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace)
    _signal_each(alive, signal.SIGKILL)
    for pgid in pgids:
        _signal_group(pgid, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=5)
    for _ in range(10 if home else 0):  # a marked process may start another while we kill it: look again
        left = _marked(home)
        if not left:
            return
        _signal_each(left, signal.SIGKILL)
        psutil.wait_procs(left, timeout=0.5)


class AirflowStack:
    """api-server + scheduler + dag-processor + triggerer on 127.0.0.1:<port>, state under ``home``.

    Example::

        with AirflowStack(tmp / "airflow", env={"HMS_HOME": str(hms_home)}) as stack:
            run_id = stack.trigger("policy_wildfire-aid-2024", {"effective_at": "+5s"})
            assert stack.wait_for_run("policy_wildfire-aid-2024", run_id, timeout=300) == "success"

    :param home: AIRFLOW_HOME (SQLite DB, logs, users file, stack.json)
    :param port: api-server port; a free one when None
    :param env: extra/overriding environment for every component (wins over the defaults)
    :param users: user name → password; default admin + alice, bob, carol, dana with random passwords
        (kept in ``<home>/passwords.json`` so a restarted stack keeps them)
    """

    def __init__(
        self,
        home: Path,
        *,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        users: Mapping[str, str] | None = None,
    ) -> None:
        if port is None:
            from hms.chaos import free_port

            port = free_port()
        self.home = Path(home).resolve()
        self.port = int(port)
        self.url = f"http://127.0.0.1:{self.port}"
        self.passwords_file = self.home / "passwords.json"
        self.users: dict[str, str] = dict(users) if users is not None else self._default_users()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = self._environment(env or {})

    # ---- configuration -------------------------------------------------------------------------------

    def _default_users(self) -> dict[str, str]:
        known: dict[str, str] = {}
        with contextlib.suppress(OSError, ValueError):
            known = json.loads(self.passwords_file.read_text())
        return {u: known.get(u) or secrets.token_urlsafe(9) for u in ("admin", *CLERKS)}

    def _environment(self, extra: Mapping[str, str]) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "HMS_ACTOR"}
        plugins = REPO / "plugins"
        # Clerks are Airflow Viewers: they read runs and act in the HMS pages (which authenticate them
        # themselves), but cannot "Mark success" a task or clear one. The gates do not rely on it (the core
        # refuses a deploy without approvals whatever a task's state); it keeps the UI honest.
        roles = ",".join(f"{u}:{'admin' if u == 'admin' else 'viewer'}" for u in self.users)
        airflow = {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": roles,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__WORKERS": "1",
            # One secret for every component, or tokens minted by one are refused by another.
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
        }
        path = [str(plugins), *filter(None, base.get("PYTHONPATH", "").split(os.pathsep))]
        hms = {"PYTHONPATH": os.pathsep.join(path)}  # steps act as the pipeline (hms.identity), not HMS_ACTOR
        if "HMS_HOME" not in base and "HMS_HOME" not in extra:
            hms["HMS_HOME"] = str(self.home / "hms")
        return {**base, **airflow, **hms, **dict(extra), MARKER: str(self.home)}

    # ---- lifecycle -----------------------------------------------------------------------------------

    def start(self, timeout: float = 180) -> None:
        """Migrate the DB, start the four components, wait until healthy and the policy DAGs are parsed."""
        deadline = time.monotonic() + timeout
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        self.passwords_file.write_text(json.dumps(self.users) + "\n")
        self.passwords_file.chmod(0o600)
        migrate = subprocess.run(
            [_airflow_bin(), "db", "migrate"], env=self.env, capture_output=True, text=True,
            timeout=max(30.0, deadline - time.monotonic()), check=False,
        )
        (self.home / "logs" / "db-migrate.log").write_text(migrate.stdout + migrate.stderr)
        if migrate.returncode != 0:
            raise StackError(f"airflow db migrate failed (exit {migrate.returncode}): {migrate.stderr[-2000:]}")
        try:
            for component in COMPONENTS:
                self._spawn(component)
            self._write_state()
            self._wait_healthy(deadline)
            self.wait_for_dags(timeout=max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise

    def _spawn(self, component: str) -> None:
        log = (self.home / "logs" / f"{component}.log").open("ab")
        args = [_airflow_bin(), component]
        try:
            self.procs[component] = subprocess.Popen(
                args, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.home,
            )
        finally:
            log.close()

    def _write_state(self) -> None:
        state = {
            "url": self.url,
            "port": self.port,
            "home": str(self.home),
            "pids": {c: p.pid for c, p in self.procs.items()},
            "users": self.users,
            "env": {k: v for k, v in self.env.items() if k.startswith(("HMS_", "AIRFLOW_HOME"))},
        }
        path = self.home / "stack.json"
        path.write_text(json.dumps(state, indent=2) + "\n")
        path.chmod(0o600)

    def log_tail(self, component: str, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return (self.home / "logs" / f"{component}.log").read_text(errors="replace")[-chars:]
        return ""

    def _check_running(self) -> None:
        for component, proc in self.procs.items():
            if proc.poll() is not None:
                raise StackError(
                    f"airflow {component} exited with {proc.returncode}; "
                    f"log {self.home / 'logs' / (component + '.log')}:\n{self.log_tail(component)}"
                )

    def health(self) -> dict[str, Any]:
        """GET /api/v2/monitor/health (no auth needed)."""
        with self._airflow("admin") as api, _refusals():
            return api.health()

    def _wait_healthy(self, deadline: float) -> None:
        last: object = "no answer"
        while time.monotonic() < deadline:
            self._check_running()
            try:
                h = self.health()
                last = h
                if all((h.get(k) or {}).get("status") == "healthy" for k in
                       ("metadatabase", "scheduler", "triggerer", "dag_processor")):
                    return
            except (httpx.HTTPError, ValueError, StackError) as e:
                last = e
            time.sleep(0.5)
        raise StackError(f"Airflow at {self.url} not healthy in time: {last}")

    def protocol_files(self) -> list[Path]:
        """The protocol files the DAG files turn into DAGs (one each, a broken file too)."""
        return protocol_files(Path(self.env.get("HMS_REPO", REPO)))

    def wait_for_dags(self, dag_ids: Iterable[str] = (), timeout: float = 120) -> None:
        """Until every id in ``dag_ids`` is known to the API (parsed + serialized) and there are as many
        ``policy`` DAGs as protocol files; import errors fail at once."""
        wanted = set(dag_ids)
        n_policies = len(self.protocol_files())
        deadline = time.monotonic() + timeout
        with self.api() as api:
            while True:
                self._check_running()
                errors = api.import_errors()
                if errors:
                    raise StackError("DAG import errors: " + "; ".join(
                        f"{e.filename}: {e.stack_trace[-800:]}" for e in errors))
                dags = api.dags()
                missing = wanted - {d.dag_id for d in dags}
                policies = [d for d in dags if "policy" in d.tags]
                if len(policies) < n_policies:
                    missing.add(f"{n_policies - len(policies)} policy DAG(s)")
                if not missing:
                    return
                if time.monotonic() > deadline:
                    raise StackError(f"DAGs not parsed in time: {sorted(missing)}\n{self.log_tail('dag-processor')}")
                time.sleep(1)

    def enable_intake(self, timeout: float = 60) -> None:
        """Turn the intake DAG on, once it is parsed: from then on a pushed bundle starts its pipeline.

        Not part of ``start``: tests start stacks whose runs they count, and an intake running every minute
        would start runs of its own. ``make up`` and the demo's stack, left running for people, call it.
        """
        self.wait_for_dags([INTAKE_DAG], timeout=timeout)
        with self.api() as api:
            api.unpause(INTAKE_DAG)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL every component's process group, then sweep marked stragglers. Idempotent."""
        terminate(self.home, [p.pid for p in self.procs.values()])
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.procs.clear()
        with contextlib.suppress(FileNotFoundError):
            (self.home / "stack.json").unlink()

    def kill(self, component: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one component's whole process group (a crash: its task processes go too)."""
        proc = self.procs[component]
        _signal_group(proc.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)

    def restart(self, component: str) -> None:
        """Stop (if still running) and start one component again with the same environment."""
        if component not in COMPONENTS:
            raise StackError(f"unknown component {component!r}; one of {', '.join(COMPONENTS)}")
        proc = self.procs.get(component)
        if proc is not None and proc.poll() is None:
            terminate(None, [proc.pid], grace=5)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self._spawn(component)
        self._write_state()

    def reconfigure(
        self, env: Mapping[str, str], components: Iterable[str] = ("scheduler", "triggerer", "api-server")
    ) -> None:
        """Change environment variables (e.g. point HMS_HOME at another registry) and restart the components
        that read them at run time — tasks (scheduler's workers), triggers, plugin pages — then wait healthy.

        Why: one stack per test module is cheap; one registry per scenario keeps scenarios independent.
        The dag-processor is left alone (the DAG's shape does not depend on the registry).
        """
        self.env.update(env)
        components = tuple(components)
        unknown = set(components) - set(COMPONENTS)
        if unknown:
            raise StackError(f"unknown component(s) {sorted(unknown)}; one of {', '.join(COMPONENTS)}")
        running = [self.procs[c] for c in components if c in self.procs and self.procs[c].poll() is None]
        terminate(None, [p.pid for p in running], grace=5)  # all at once: each takes seconds to shut down
        for proc in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        started = time.time()  # after the old processes are gone: only a new one can beat after this
        for component in components:
            self._spawn(component)
        self._write_state()
        self._wait_healthy(time.monotonic() + 120)
        for component in components:  # a stale heartbeat can look healthy: wait for the new process's own
            self._wait_component_heartbeat(component, started)

    def _wait_component_heartbeat(self, component: str, started: float, timeout: float = 60) -> None:
        key = {"scheduler": "scheduler", "triggerer": "triggerer", "dag-processor": "dag_processor"}.get(component)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_running()
            try:
                if key is None:
                    self.health()
                    return
                beat = (self.health().get(key) or {}).get(f"latest_{key}_heartbeat")
                if beat and _parse_time(beat) >= started:
                    return
            except (httpx.HTTPError, ValueError, StackError):
                pass
            time.sleep(0.5)
        raise StackError(f"airflow {component} did not heartbeat after restart:\n{self.log_tail(component)}")

    def __enter__(self) -> AirflowStack:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # ---- REST: through hms.airflow_api, the project's one Airflow client ----------------------------------

    def _airflow(self, user: str) -> AirflowApi:
        return AirflowApi(self.url, user, self.users[user], timeout=30)

    @contextlib.contextmanager
    def api(self, user: str = "admin") -> Iterator[AirflowApi]:
        """The stack's REST API, logged in as ``user``; Airflow's refusals come out as StackError."""
        with self._airflow(user) as api, _refusals():
            api.login()
            yield api

    def token(self, user: str) -> str:
        """A JWT for ``user`` from POST /auth/token (what the UI and API clients hold)."""
        with self._airflow(user) as api, _refusals():
            return api.token()

    def client(self, user: str = "admin") -> httpx.Client:
        """An httpx client on the API with ``user``'s Bearer token (for the calls AirflowApi does not make)."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token(user)}"}, timeout=30
        )

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, run_id: str | None = None) -> str:
        """Unpause ``dag_id`` and start a run; returns its run id. A duplicate ``run_id`` raises (409).

        Through ``AirflowApi.trigger`` (what ``hms ci run`` uses): it retries the 5xx that Airflow on
        SQLite answers under load with the same run id — one is made up when none is given — so a retry
        can never start a second run.
        """
        run_id = run_id or f"manual__hms-{secrets.token_hex(6)}"
        with self.api() as api:
            created = api.trigger(dag_id, run_id, conf or {})
        if not created:
            raise StackError(f"trigger {dag_id}: 409 a run {run_id!r} exists already")
        return run_id

    def run_state(self, dag_id: str, run_id: str) -> str:
        with self.api() as api:
            return api.run_state(dag_id, run_id)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        """Poll until the run is success/failed; returns that state (StackError with task states on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_running()
            state = self.run_state(dag_id, run_id)
            if state in TERMINAL:
                return state
            if time.monotonic() > deadline:
                raise StackError(
                    f"run {dag_id}/{run_id} still {state} after {timeout:.0f} s: {self.task_states(dag_id, run_id)}"
                )
            time.sleep(1)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        with self.api() as api:
            return api.task_instances(dag_id, run_id)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """task_id → state (``"none"`` for tasks not yet scheduled)."""
        return {ti["task_id"]: str(ti["state"] or "none") for ti in self.task_instances(dag_id, run_id)}

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The task's log as text (the REST API's structured lines joined)."""
        with self.api() as api:
            return api.task_log(dag_id, run_id, task_id, try_number)


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """Airflow's refusals (hms.airflow_api raises BadInput) as the stack's own error."""
    try:
        yield
    except BadInput as e:
        raise StackError(str(e)) from None


# ---- CLI ---------------------------------------------------------------------------------------------


def _load_state(home: Path) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        return dict(json.loads((home / "stack.json").read_text()))
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.airflow_stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--home", type=Path, default=REPO / ".airflow", help="AIRFLOW_HOME (default: .airflow)")
    parser.add_argument("--port", type=int, default=None, help="api-server port (default: 8080 if free)")
    args = parser.parse_args(argv)
    home = args.home.resolve()
    state = _load_state(home)
    if args.command == "up":
        if state and any(_alive(p) for p in state["pids"].values()):
            print(f"already running at {state['url']} (stop it with: down --home {home})", file=sys.stderr)
            return 1
        port = args.port
        if port is None:
            import socket

            with socket.socket() as s:
                port = 8080 if s.connect_ex(("127.0.0.1", 8080)) != 0 else None
        stack = AirflowStack(home, port=port)
        try:
            stack.start()
        except StackError as e:
            print(f"stack did not start: {e}", file=sys.stderr)
            return 1
        print(f"Airflow UI: {stack.url}   (logs: {home / 'logs'}; stop: make down)")
        print("logins: " + ", ".join(f"{u} / {p}" for u, p in stack.users.items()))
        print(f"HMS registry: {stack.env.get('HMS_DATABASE_URL') or stack.env.get('HMS_HOME')}")
        try:  # a local stack takes new bundles up on its own: a push starts its pipeline
            stack.enable_intake()
        except StackError as e:
            print(f"intake: ❌ {e}; turn {INTAKE_DAG} on in the UI (the stack is running)", file=sys.stderr)
            return 1
        print(f"intake: on — {INTAKE_DAG} starts a pipeline run for each new bundle within a minute")
        return 0
    if args.command == "down":
        pids = list((state or {}).get("pids", {}).values())
        terminate(home, pids)
        with contextlib.suppress(FileNotFoundError):
            (home / "stack.json").unlink()
        print(f"stopped {len(pids)} component(s) under {home}" if pids else f"nothing running under {home}")
        return 0
    if not state:
        print(f"not running (no {home / 'stack.json'})")
        return 1
    alive = {c: _alive(p) for c, p in state["pids"].items()}
    print(f"{state['url']}: " + ", ".join(f"{c} {'up' if ok else 'DOWN'}" for c, ok in alive.items()))
    with contextlib.suppress(httpx.HTTPError, ValueError, BadInput), AirflowApi(state["url"], "admin", "") as api:
        h = api.health()
        print("health: " + ", ".join(f"{k} {v.get('status')}" for k, v in h.items() if isinstance(v, dict)))
    return 0 if all(alive.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

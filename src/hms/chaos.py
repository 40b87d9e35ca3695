"""The chaos job: kill a fraction of decision-service replicas while checking that *answers* stay right.

A steady-state hypothesis (Chaos Toolkit's term) is checked before, continuously
during, and after the faults: the success ratio of requests through the balancer
stays at or above ``min_health``, and every golden decision (the test cases of the
bundles in force) is answered correctly by whichever replica serves it, with the
version that is in force at that instant. Health checks alone would pass a fleet
that answers quickly and wrongly.

Local mode runs real ``hms serve`` processes (each in its own process group) with a
supervisor that restarts killed ones, and a client-side balancer with retries — what
a Kubernetes Service plus a ReplicaSet give. Kubernetes mode deletes pods by label
selector and probes the Service (``KubernetesFleet``). Whatever the experiment
started is stopped when it ends, also on Ctrl-C, SIGTERM or an error.

A kill is made only into a whole fleet (every replica ready again), as a PodDisruptionBudget
admits a disruption only while enough pods are ready: otherwise a machine slow to restart a
replica (a loaded CI host) lets the schedule kill the last ready one, and the experiment measures
the host's start-up time instead of the fleet's failover. A kill that falls due while the fleet is
still healing waits for it, and the report counts those waits.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx

from hms import clock
from hms.bundle import Bundle
from hms.cases import Tolerance, same_value
from hms.errors import BadInput

POD_SELECTOR = "app.kubernetes.io/name=hms-api"


def parse_window(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smh])", text.strip())
    if not m or float(m.group(1)) <= 0:
        raise BadInput(f"--time takes a duration such as 30s, 5m or 1h, not {text!r}", where="--time")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]


# ---- golden decisions ------------------------------------------------------------
@dataclass(frozen=True)
class Golden:
    protocol_id: str
    name: str
    input: dict[str, Any]
    period: str | None = None  # a protocol with periods: the case's, asked for explicitly

    def request(self) -> dict[str, Any]:
        return {"input": self.input, **({"period": self.period} if self.period else {})}


class Oracle:
    """What a correct answer is: the responding bundle's own test case, and that bundle in force at that instant."""

    def __init__(self, bundles: dict[str, Bundle], in_force: Callable[[str, datetime], str | None]) -> None:
        self.bundles = bundles
        self.in_force = in_force

    def wrong(self, g: Golden, body: dict[str, Any], t0: datetime, t1: datetime) -> str | None:
        sha = body.get("bundle_sha256")
        b = self.bundles.get(sha or "")
        if b is None:
            return f"{g.protocol_id}: answered by unknown bundle {sha}"
        if sha not in {self.in_force(g.protocol_id, t0), self.in_force(g.protocol_id, t1)}:
            return f"{g.protocol_id}: answered with v{b.protocol.version}, not the version in force"
        case = next((c for c in b.protocol.service_cases if c["name"] == g.name and c["input"] == g.input), None)
        # Another version's case: the answer must equal this bundle's own evaluation.
        period = b.protocol.parse_period(g.period, where="period") if g.period else None
        expect = b.protocol.decide(g.input, period) if case is None else case["expect"]
        got = body.get("outputs", {})
        for k, v in expect.items():
            if k not in b.protocol.outputs:  # cases may pin intermediate rules; the service answers outputs
                continue
            if not same_value(v, got.get(k), Tolerance.of(case or {})):
                return f"{g.protocol_id} '{g.name}': {k} = {got.get(k)!r}, expected {v!r}"
        return None


# ---- the balancer -----------------------------------------------------------------
@dataclass
class Outcome:
    ok: bool
    wrong: str | None
    latency: float
    error: str | None = None


class Balancer:
    """Round-robin over replica URLs; a failed attempt (connection error, 5xx) moves on to the next one."""

    def __init__(self, urls: Callable[[], Sequence[str]], *, retries: bool, timeout: float = 2.0) -> None:
        self.urls = urls
        self.retries = retries
        self._i = 0
        self._lock = threading.Lock()
        self.client = httpx.Client(timeout=timeout)

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        urls = list(self.urls())
        if not urls:
            raise httpx.ConnectError("no replicas")
        with self._lock:
            start = self._i
            self._i += 1
        attempts = len(urls) if self.retries else 1
        last: Exception | None = None
        for k in range(attempts):
            url = urls[(start + k) % len(urls)]
            try:
                r = self.client.post(url + path, json=body)
            except httpx.HTTPError as e:
                last = e
                continue
            if r.status_code < 500:
                return r
            last = httpx.HTTPStatusError(f"{r.status_code}", request=r.request, response=r)
        assert last is not None
        raise last

    def close(self) -> None:
        self.client.close()


# ---- fleets ---------------------------------------------------------------------
class Fleet(Protocol):
    kills: int
    restarts: int

    def urls(self) -> Sequence[str]: ...

    def kill(self, fraction: float, rng: random.Random) -> list[str]: ...

    def wait_ready(self, timeout: float) -> bool: ...

    def whole(self) -> bool:
        """Every replica is ready now (one quick probe each; never waits)."""
        ...

    def stop(self) -> None: ...


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def victims(n_alive: int, fraction: float) -> int:
    """How many to kill: the fraction, rounded up, at least one (Chaos Mesh's fixed-percent floors to zero on
    small fleets, which would make a 10 % experiment on 3 replicas do nothing)."""
    return min(n_alive, max(1, math.ceil(fraction * n_alive - 1e-9)))


class LocalFleet:
    """N ``hms serve`` processes for one environment, restarted by a supervisor thread when they die."""

    def __init__(self, environment: str, replicas: int, *, restart_delay: float = 0.2) -> None:
        self.environment = environment
        self.ports = [free_port() for _ in range(replicas)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * replicas
        self.kills = 0
        self.restarts = 0
        self.restart_delay = restart_delay
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._supervisor = threading.Thread(target=self._supervise, name="chaos-supervisor", daemon=True)

    def _spawn(self, i: int) -> None:
        cmd = [sys.executable, "-m", "hms", "serve", "--env", self.environment, "--port", str(self.ports[i])]
        self.procs[i] = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def start(self) -> None:
        for i in range(len(self.ports)):
            self._spawn(i)
        self._supervisor.start()

    def _supervise(self) -> None:
        while not self._stopping.wait(0.05):
            with self._lock:
                for i, p in enumerate(self.procs):
                    if p is not None and p.poll() is not None and not self._stopping.is_set():
                        time.sleep(self.restart_delay)
                        self._spawn(i)
                        self.restarts += 1

    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p is not None]

    def kill(self, fraction: float, rng: random.Random) -> list[str]:
        with self._lock:
            alive = [i for i, p in enumerate(self.procs) if p is not None and p.poll() is None]
            chosen = rng.sample(alive, victims(len(alive), fraction)) if alive else []
            for i in chosen:
                p = self.procs[i]
                assert p is not None
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                self.kills += 1
        return [f"replica-{i} (port {self.ports[i]})" for i in chosen]

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as c:
            for url in self.urls():
                while True:
                    try:
                        if c.get(url + "/readyz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(0.05)
        return True

    def whole(self) -> bool:
        with httpx.Client(timeout=0.5) as c:
            for url in self.urls():
                try:
                    if c.get(url + "/readyz").status_code != 200:
                        return False
                except httpx.HTTPError:
                    return False
        return True

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor.is_alive():
            self._supervisor.join(5)
        with self._lock:
            for p in self.procs:
                if p is not None and p.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            for p in self.procs:
                if p is None:
                    continue
                try:
                    p.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()


class KubernetesFleet:
    """The environment's hms-api pods: deletes a random fraction by label selector; the Service balances.

    Restarts are the ReplicaSet's business; they are counted as pods seen that were not there before.
    """

    def __init__(self, namespace: str, service_urls: Sequence[str], core_api: Any, selector: str = POD_SELECTOR):
        self.namespace = namespace
        self.service_urls = list(service_urls)
        self.api = core_api
        self.selector = selector
        self.kills = 0
        self.restarts = 0
        self._seen: set[str] = set(self._running())
        self._size = len(self._seen)
        self._killed: set[str] = set()

    def _running(self) -> list[str]:
        pods = self.api.list_namespaced_pod(self.namespace, label_selector=self.selector).items
        # The server filters by the selector; checking again here means a misbehaving API (or emulator) can
        # never make the chaos job delete a pod that is not a decision-service replica.
        want = dict(kv.split("=", 1) for kv in self.selector.split(","))
        return [
            p.metadata.name
            for p in pods
            if not p.metadata.deletion_timestamp
            and all((p.metadata.labels or {}).get(k) == v for k, v in want.items())
        ]

    def urls(self) -> list[str]:
        return self.service_urls

    def kill(self, fraction: float, rng: random.Random) -> list[str]:
        running = self._running()
        new = set(running) - self._seen
        self.restarts += len(new)
        self._seen |= new
        chosen = rng.sample(running, victims(len(running), fraction)) if running else []
        for name in chosen:
            self.api.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)
            self.kills += 1
        return chosen

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as c:
            while time.monotonic() < deadline:
                try:
                    if all(c.get(u + "/readyz").status_code == 200 for u in self.service_urls):
                        return True
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        return False

    def whole(self) -> bool:
        """As many ready pods as the fleet had when the experiment began (a pod without status
        conditions, as the API emulator serves them, counts as ready once running)."""
        pods = self.api.list_namespaced_pod(self.namespace, label_selector=self.selector).items
        ready = 0
        for p in pods:
            if p.metadata.deletion_timestamp:
                continue
            conditions = getattr(getattr(p, "status", None), "conditions", None) or []
            if not conditions or any(c.type == "Ready" and c.status == "True" for c in conditions):
                ready += 1
        return ready >= self._size

    def stop(self) -> None:  # the cluster keeps its pods; nothing was started here
        return None


# ---- the experiment ---------------------------------------------------------------
@dataclass
class Report:
    environment: str
    replicas: int
    window: float
    requests: int = 0
    failures: int = 0
    wrong: int = 0
    kills: int = 0
    restarts: int = 0
    kills_waited: int = 0
    latencies: list[float] = field(default_factory=list)
    before_ok: bool = False
    after_ok: bool = False
    evidence: list[str] = field(default_factory=list)
    min_health: float = 0.99
    interrupted: bool = False

    @property
    def health(self) -> float:
        return 1.0 if self.requests == 0 else (self.requests - self.failures) / self.requests

    @property
    def p99_ms(self) -> float:
        if not self.latencies:
            return 0.0
        xs = sorted(self.latencies)
        return 1000 * xs[min(len(xs) - 1, math.ceil(0.99 * len(xs)) - 1)]

    @property
    def ok(self) -> bool:
        return (
            not self.interrupted
            and self.before_ok
            and self.after_ok
            and self.wrong == 0
            and self.requests > 0
            and self.health >= self.min_health
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "environment": self.environment,
            "replicas": self.replicas,
            "window_seconds": self.window,
            "requests": self.requests,
            "failures": self.failures,
            "wrong_answers": self.wrong,
            "kills": self.kills,
            "restarts": self.restarts,
            "kills_waited_for_a_whole_fleet": self.kills_waited,
            "p99_ms": round(self.p99_ms, 2),
            "health": self.health,
            "min_health": self.min_health,
            "steady_state_before": self.before_ok,
            "steady_state_after": self.after_ok,
            "evidence": self.evidence[:20],
        }

    def lines(self) -> list[str]:
        out = [
            f"[chaos] {self.environment}: requests {self.requests}, failures {self.failures}, wrong answers "
            f"{self.wrong}, kills {self.kills}, restarts {self.restarts}, p99 {self.p99_ms:.1f} ms, "
            f"health {100 * self.health:.2f}%"
        ]
        if self.kills_waited:
            out.append(
                f"[chaos] {self.kills_waited} kill(s) waited for every replica to be ready again "
                "(replicas restart slower than the kill interval)"
            )
        if self.ok:
            out.append("[chaos] ✅ survived faults")
            return out
        reasons = []
        if self.interrupted:
            reasons.append("interrupted")
        if not self.before_ok:
            reasons.append("steady state not met before the faults")
        if self.health < self.min_health:
            reasons.append(f"health {100 * self.health:.2f}% < {100 * self.min_health:.2f}%")
        if self.wrong:
            reasons.append(f"{self.wrong} wrong answer(s)")
        if not self.after_ok:
            reasons.append("steady state not restored after the faults")
        out.append("[chaos] ❌ hypothesis failed: " + "; ".join(reasons))
        out += [f"  evidence: {e}" for e in self.evidence[:10]]
        return out


class Experiment:
    def __init__(
        self,
        fleet: Fleet,
        balancer: Balancer,
        goldens: list[Golden],
        oracle: Oracle,
        report: Report,
        *,
        kill_fraction: float,
        seed: int | None = None,
        workers: int = 2,
        say: Callable[[str], None] = lambda s: None,
    ) -> None:
        self.fleet, self.balancer, self.goldens, self.oracle, self.report = fleet, balancer, goldens, oracle, report
        self.kill_fraction = kill_fraction
        self.rng = random.Random(seed)
        self.workers = workers
        self.say = say
        self._lock = threading.Lock()

    def ask(self, g: Golden) -> Outcome:
        t0, m0 = clock.now(), time.monotonic()
        try:
            r = self.balancer.post(f"/v1/protocols/{g.protocol_id}/decide", g.request())
        except httpx.HTTPError as e:
            return Outcome(False, None, time.monotonic() - m0, f"{type(e).__name__}: {e}")
        latency, t1 = time.monotonic() - m0, clock.now()
        if r.status_code != 200:
            return Outcome(True, f"{g.protocol_id} '{g.name}': HTTP {r.status_code} {r.text[:200]}", latency)
        return Outcome(True, self.oracle.wrong(g, r.json(), t0, t1), latency)

    def steady_state(self, phase: str) -> bool:
        problems = []
        for g in self.goldens:
            o = self.ask(g)
            if not o.ok or o.wrong:
                problems.append(f"{phase}: {o.error or o.wrong}")
        self.report.evidence += problems
        return not problems

    def _load(self, until: float) -> None:
        i = 0
        while time.monotonic() < until:
            g = self.goldens[i % len(self.goldens)]
            i += 1
            o = self.ask(g)
            with self._lock:
                self.report.requests += 1
                self.report.latencies.append(o.latency)
                if not o.ok:
                    self.report.failures += 1
                    self._evidence(f"request failed: {o.error}")
                elif o.wrong:
                    self.report.wrong += 1
                    self._evidence(f"wrong answer: {o.wrong}")
            if not o.ok:
                time.sleep(0.005)  # a client backs off a little; without it a dead fleet is hammered in a tight loop

    def _evidence(self, line: str) -> None:
        if len(self.report.evidence) < 100:
            self.report.evidence.append(line)

    def run(self) -> Report:
        rep = self.report
        if not self.fleet.wait_ready(60):
            rep.evidence.append("replicas did not become ready")
            return rep
        rep.before_ok = self.steady_state("before")
        self.say(f"[chaos] steady state before: {'✅' if rep.before_ok else '❌'} {len(self.goldens)} golden decisions")
        if not rep.before_ok:
            return rep
        start = time.monotonic()
        until = start + rep.window
        threads = [threading.Thread(target=self._load, args=(until,), daemon=True) for _ in range(self.workers)]
        for t in threads:
            t.start()
        interval = max(1.0, rep.window / 5)
        next_kill = start + min(interval, rep.window / 2)
        waiting = False
        while time.monotonic() < until:
            if time.monotonic() >= next_kill:
                if self.fleet.whole():
                    killed = self.fleet.kill(self.kill_fraction, self.rng)
                    self.say(f"[chaos] killed {', '.join(killed) or 'nothing'}")
                    next_kill = time.monotonic() + interval
                    waiting = False
                elif not waiting:
                    rep.kills_waited += 1
                    waiting = True
            time.sleep(0.02)
        for t in threads:
            t.join()
        ready = self.fleet.wait_ready(60)
        rep.after_ok = ready and self.steady_state("after")
        rep.kills, rep.restarts = self.fleet.kills, self.fleet.restarts
        self.say(f"[chaos] steady state after: {'✅' if rep.after_ok else '❌'}")
        return rep

"""Decision log and replay (issue 21): decision p99 at 200/s with the log on against off, and replay of 1M decisions.

Two real ``hms serve --env prod`` processes (uvicorn on 127.0.0.1) on one throw-away SQLite registry, one with
``--decision-log on``, one with ``off``, both up for the whole run. A paced client (one request at a time at
200/s, as bench_service does) alternates between them in rounds of 3 s, so both see the same machine; the
figure is each one's p99 and their ratio. The logging replica's /readyz then says how many answers it wrote
and dropped. Replay: 1M decisions of wildfire v3 (inputs declared ``log: keep``) are written straight into the
``decisions`` table, then ``hms.replay.replay`` evaluates v4 on them; the figure is its wall time.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.table import Row

HMS = str(Path(sys.executable).parent / "hms")
RATE, ROUND_SECONDS, ROUNDS = 200, 3, 4  # per replica: 4 rounds of 3 s each, alternating
REPLAY_ROWS = 1_000_000
FAMILY = {"household_size": 4, "household_income": 40000, "county_fire_declared": True}
DECIDE = "/v1/protocols/wildfire-aid-2024/decide"


def _p(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _paced(client: httpx.Client, url: str, seconds: float) -> tuple[list[float], int]:
    samples, failures = [], 0
    start = time.perf_counter()
    for k in range(int(RATE * seconds)):
        due = start + k / RATE
        while time.perf_counter() < due:
            time.sleep(0.0005)
        t0 = time.perf_counter()
        r = client.post(url + DECIDE, json={"input": {**FAMILY, "household_income": 30000 + k}})
        samples.append(time.perf_counter() - t0)
        failures += r.status_code != 200
    return samples, failures


def _serve(port: int, log: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([HMS, "serve", "--env", "prod", "--port", str(port), "--decision-log", log],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _ready(client: httpx.Client, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if client.get(url + "/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


def _latency_rows() -> list[Row]:
    from hms.chaos import free_port

    ports = {"on": free_port(), "off": free_port()}
    procs = {k: _serve(p, k) for k, p in ports.items()}
    urls = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
    samples: dict[str, list[float]] = {"on": [], "off": []}
    failures = {"on": 0, "off": 0}
    try:
        with httpx.Client(timeout=5) as client:
            for url in urls.values():
                _ready(client, url)
                _paced(client, url, 0.5)  # warm both up
            for i in range(ROUNDS):
                for k in (("on", "off") if i % 2 == 0 else ("off", "on")):
                    got, bad = _paced(client, urls[k], ROUND_SECONDS)
                    samples[k] += got
                    failures[k] += bad
            time.sleep(0.5)  # the writer's last batch
            log = client.get(urls["on"] + "/readyz").json()["decision_log"]
    finally:
        for p in procs.values():
            p.terminate()
            p.wait(10)
    on, off = _p(samples["on"], 0.99), _p(samples["off"], 0.99)
    ratio = on / off
    sent = len(samples["on"]) + int(RATE * 0.5)
    dropped, failed = sum(log["dropped"].values()), failures["on"] + failures["off"]
    return [
        Row("decision log", f"decision p99 at {RATE}/s, log on vs off ({len(samples['on'])} each, alternating)",
            f"{on * 1000:.2f} ms vs {off * 1000:.2f} ms ({ratio:.2f}x)", "≤ 1.2x", ratio <= 1.2),
        Row("decision log", "answers logged at 200/s: written, dropped, failed requests",
            f"{log['written']}/{sent}, dropped {dropped}, failed {failed}", "all written, 0 dropped, 0 failed",
            log["written"] == sent and not dropped and not failed),
    ]


def _replay_rows(home: Path) -> list[Row]:
    from hms import bundle, clock, decision_log_key, protocol
    from hms.decision_masking import Masking
    from hms.replay import replay
    from hms.service.decision_log import Answered, DatabaseSink, DecisionLog
    from tests.deploy_helpers import record, variant

    def keeping(version: int, **params: float) -> protocol.Protocol:
        data = variant(version, **params).data
        for name in ("household_size", "household_income"):
            data["inputs"][name].update(log="keep", log_purpose="replay of a change of the income limit")
        return protocol.from_data(data, f"wildfire v{version}")

    v10 = record(keeping(10))
    v11 = bundle.read_bytes(bundle.build(keeping(11, per_member=1100, income_limit_pct=3.0)))
    masking, key = Masking.of(v10.protocol.inputs), decision_log_key.load("prod")
    rng = random.Random(21)
    at = clock.now() - timedelta(days=1)
    writer = DecisionLog("prod", DatabaseSink(), key)
    con = sqlite3.connect(home / "registry.db")
    sql = ("INSERT INTO decisions (decision_id, environment, protocol_id, version, bundle_sha256, decided_at, as_of, "
           "period, latency_ms, batch_id, key_id, input, outputs) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)")
    stamp = at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    for _ in range(REPLAY_ROWS // 100_000):
        batch = []
        for _ in range(100_000):
            rec = {"household_size": rng.randint(1, 9), "household_income": float(rng.randint(0, 150_000)),
                   "county_fire_declared": rng.random() < 0.8}
            out = v10.protocol.decide(rec)
            a = Answered(str(uuid.uuid4()), "wildfire-aid-2024", 10, v10.sha256, at, at, None, 1.0, rec,
                         {k: (int(v) if isinstance(v, float) and v.is_integer() else v) for k, v in out.items()},
                         masking)
            r = writer._row(a)
            batch.append((r["decision_id"], "prod", r["protocol_id"], 10, r["bundle_sha256"], stamp, stamp, None, 1.0,
                          None, r["key_id"], r["input"], r["outputs"]))
        con.executemany(sql, batch)
        con.commit()
    con.close()
    started = time.perf_counter()
    result = replay(v11, "prod", at - timedelta(hours=1))
    seconds = time.perf_counter() - started
    return [Row("replay", f"replay v11 on {REPLAY_ROWS:,} logged decisions (SQLite, vectorized)",
                f"{seconds:.2f} s ({result.changed:,} would change)", "< 10 s",
                seconds < 10 and result.replayed == REPLAY_ROWS)]


def run() -> list[Row]:
    home = Path(tempfile.mkdtemp(prefix="hms-bench-dlog-"))
    os.environ.update({"HMS_HOME": str(home), "HMS_CREDENTIALS": str(home / "credentials.json")})
    for var in ("HMS_DATABASE_URL", "HMS_ACTOR", "HMS_TOKEN", "HMS_API", "HMS_DECISION_LOG_URL",
                "HMS_DECISION_LOG_KEY"):
        os.environ.pop(var, None)
    from hms.registry.db import reset_engines
    from tests.deploy_helpers import config, promote_all, ready, record, variant, write_config

    reset_engines()
    os.environ["HMS_PIPELINE_CONFIG"] = str(write_config(home / "pipeline.yml"))
    cfg = config()
    b = ready(record(variant(3)), cfg)
    promote_all(b, cfg)
    rows = _latency_rows()
    rows += _replay_rows(home)
    print(json.dumps({"bench_decision_log_home": str(home), "at": datetime.now(UTC).isoformat()}), file=sys.stderr)
    return rows

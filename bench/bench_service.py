"""Decision service (issue 4): rollback latency across 4 replicas, activation skew, decision p99 at a fixed rate.

Four real ``hms serve`` processes for prod on a throw-away SQLite registry. Rollback latency runs from
invoking ``hms rule rollback`` (a subprocess, as ops would) until all four answer with the restored
version (the replicas poll the registry's generation every 50 ms); the CLI process's CPU time is
shown beside it because the wall time swings with the load of a shared machine. Activation skew: a
version is scheduled 2 s ahead; four threads poll one replica each and record the first answer under
the new version; the figure is the largest distance of those instants from ``activate_at`` (the poll
period, ~1–3 ms, bounds its resolution).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.table import Row

FAMILY = {"household_size": 4, "household_income": 40000, "county_fire_declared": True}
ROOT = Path(__file__).resolve().parents[1]
HMS = str(Path(sys.executable).parent / "hms")


def _versions(client: httpx.Client, urls: list[str]) -> list[int]:
    return [client.post(u + "/v1/protocols/wildfire-aid-2024/decide", json={"input": FAMILY}).json()["version"]
            for u in urls]


def run() -> list[Row]:
    home = tempfile.mkdtemp(prefix="hms-bench-service-")
    os.environ.update({"HMS_HOME": home, "HMS_ACTOR": "bench"})
    os.environ.pop("HMS_DATABASE_URL", None)
    from hms import chaos, deployments
    from hms.registry.db import reset_engines, session_scope
    from tests.deploy_helpers import config, promote_all, ready, record, variant

    reset_engines()
    cfg = config()
    cfg_file = Path(home) / "pipeline.yml"
    from tests.deploy_helpers import write_config

    os.environ["HMS_PIPELINE_CONFIG"] = str(write_config(cfg_file))
    bundles = {}
    for v in (3, 4):  # each version recorded only once the one before is out: a newer one supersedes it
        bundles[v] = ready(record(variant(v, max_payment=5000 + v)), cfg)
        promote_all(bundles[v], cfg)
    fleet = chaos.LocalFleet("prod", 4)
    fleet.start()
    rows: list[Row] = []
    try:
        fleet.wait_ready(60)
        urls = fleet.urls()
        client = httpx.Client(timeout=5)
        lat, cpu, pickup = [], [], []
        for i in range(10):
            target = 3 if i % 2 == 0 else 4
            args = ["--to", "previous"] if target == 3 else ["--to", "4"]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run([HMS, "rule", "rollback", "wildfire-aid-2024", "--env", "prod", *args], check=True,
                           capture_output=True)
            committed = time.perf_counter()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the replicas still run: only the CLI counts
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            while set(_versions(client, urls)) != {target}:
                time.sleep(0.002)
            done = time.perf_counter()
            lat.append(done - t0)
            pickup.append(done - committed)
        lat.sort()
        p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
        p50 = lat[len(lat) // 2]
        rows.append(Row("service", "rollback → 4 replicas answer the previous version (p95 of 10)",
                        f"{p95 * 1000:.0f} ms", "< 500 ms", p95 < 0.5))
        rows.append(Row("service", "rollback → 4 replicas answer the previous version (p50 of 10)",
                        f"{p50 * 1000:.0f} ms", "-", True))
        pickup.sort()
        p95_pickup = pickup[min(len(pickup) - 1, int(0.95 * len(pickup)))]
        rows.append(Row("service", "registry change → all 4 replicas serve it, after the CLI exits (p95 of 10)",
                        f"{p95_pickup * 1000:.0f} ms", "< 250 ms", p95_pickup < 0.25))
        cpu.sort()
        rows.append(Row("service", "`hms rule rollback` process CPU time, user+sys (p50 of 10; load-independent-ish)",
                        f"{cpu[len(cpu) // 2] * 1000:.0f} ms", "-", True))

        bundles[5] = ready(record(variant(5, max_payment=5005)), cfg)
        at = datetime.now(UTC) + timedelta(seconds=2)
        with session_scope() as s:
            for env in ("staging", "preprod"):
                deployments.deploy(s, bundles[5], env, activate_at=None, actor="bench", config=cfg)
            deployments.deploy(s, bundles[5], "prod", activate_at=at, actor="bench", config=cfg)
        firsts: list[float] = []

        def watch(url: str) -> None:
            with httpx.Client(timeout=5) as c:
                while True:
                    t_before = datetime.now(UTC)
                    v = c.post(url + "/v1/protocols/wildfire-aid-2024/decide", json={"input": FAMILY}).json()["version"]
                    if v == 5:
                        firsts.append((t_before - at).total_seconds())
                        return

        threads = [threading.Thread(target=watch, args=(u,)) for u in urls]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        skew = max(abs(x) for x in firsts)
        rows.append(Row("service", "activation skew, 4 replicas around activate_at", f"{skew * 1000:.1f} ms",
                        "< 50 ms", skew < 0.05 and len(firsts) == 4))

        rate, seconds = 200, 5
        samples, failures = [], 0
        start = time.perf_counter()
        for k in range(rate * seconds):
            due = start + k / rate
            while time.perf_counter() < due:
                time.sleep(0.0005)
            t0 = time.perf_counter()
            r = client.post(urls[k % 4] + "/v1/protocols/wildfire-aid-2024/decide", json={"input": FAMILY})
            samples.append(time.perf_counter() - t0)
            failures += r.status_code != 200
        samples.sort()
        p99 = samples[int(0.99 * len(samples)) - 1]
        achieved = len(samples) / (time.perf_counter() - start)
        rows.append(Row("service", f"decisions at {rate}/s for {seconds} s: p99 latency", f"{p99 * 1000:.1f} ms",
                        "< 50 ms", p99 < 0.05))
        rows.append(Row("service", "decisions: achieved rate, failures", f"{achieved:.0f}/s, {failures} failed",
                        f"≥ {rate * 0.95:.0f}/s, 0", achieved >= rate * 0.95 and failures == 0))
        client.close()
    finally:
        fleet.stop()
    return rows

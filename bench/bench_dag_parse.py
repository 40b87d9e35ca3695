"""Issue 19, item 4: what Airflow's dag-processor pays to parse the DAG files for a state's whole rule book.

Copies of the wildfire sample under new ids (300 and 2,000 files, generated here, never committed) in a
repository directory of their own. The DAG files of dags/ are parsed as the dag-processor parses them: a parent
that has imported Airflow (``[dag_processor] parsing_pre_import_modules``) forks one process per file, two at a
time (``parsing_processes``'s default), and each child executes its file — hms's own imports included. First
with an empty protocol-head cache (every file new), then with the cache that left (what every later parse of
an unchanged rule book costs). Side by side, in the same run: the whole book in one DAG file, the layout before
the shards (hms_operators.dag_file).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from bench.table import Row

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "include" / "protocols" / "wildfire-aid-2024.yml"
# The dag-processor's way, in one fresh interpreter per measurement: prints "seconds dags" per file, then the wall.
PARSER = """
import json, multiprocessing, runpy, sys, time
import airflow.sdk  # noqa: F401  (the parent's pre-import)

def parse(path):
    t0 = time.perf_counter()
    g = runpy.run_path(path)
    return time.perf_counter() - t0, len({v.dag_id for v in g.values() if type(v).__name__ == "DAG"})

if __name__ == "__main__":
    t0 = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(int(sys.argv[1]), maxtasksperchild=1) as pool:
        done = pool.map(parse, sys.argv[2:], chunksize=1)
    print(json.dumps({"files": done, "wall": time.perf_counter() - t0}))
"""
ONE_FILE = """\
from hms_operators.dag_file import SHARDS, intake_dag, policy_dags

for shard in range(SHARDS):
    globals().update(policy_dags(__file__, shard))
hms_intake = intake_dag(__file__)
"""
AIRFLOW_TIMEOUT = 50.0  # [dag_processor] dag_file_processor_timeout's default
PARSING_PROCESSES = 2  # [dag_processor] parsing_processes's default


def _repo(n: int, base: Path) -> Path:
    repo = base / f"repo-{n}"
    protocols = repo / "include" / "protocols"
    protocols.mkdir(parents=True)
    shutil.copy(ROOT / "include" / "rollback.sh", repo / "include" / "rollback.sh")
    shutil.copytree(ROOT / "dags", repo / "dags")
    (repo / "one-file").mkdir()
    (repo / "one-file" / "policy_pipeline.py").write_text(ONE_FILE)
    data = yaml.safe_load(SAMPLE.read_text())
    for i in range(n):
        d = copy.deepcopy(data)
        d["metadata"]["id"] = f"bench-protocol-{i:05d}"
        (protocols / f"bench-protocol-{i:05d}.yml").write_text(yaml.safe_dump(d, sort_keys=False))
    return repo


def _parse(files: list[Path], repo: Path, home: Path) -> tuple[float, float, int]:
    """``files`` parsed PARSING_PROCESSES at a time: (wall, slowest file, DAGs)."""
    env = {**os.environ, "HMS_REPO": str(repo), "HMS_HOME": str(home),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT / "src"), str(ROOT)])}
    out = subprocess.run([sys.executable, "-c", PARSER, str(PARSING_PROCESSES), *map(str, files)], env=env,
                         capture_output=True, text=True, timeout=900, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["wall"], max(s for s, _ in r["files"]), sum(n for _, n in r["files"])


def run() -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (300, 2000):
            repo = _repo(n, Path(tmp))
            home, shards = Path(tmp) / f"home-{n}", sorted((repo / "dags").glob("*.py"))
            cold_wall, cold_slowest, dags = _parse(shards, repo, home)
            assert dags == n + 1, f"{dags} DAGs for {n} protocols (+ the intake)"
            warm_wall, warm_slowest, _ = _parse(shards, repo, home)
            # The layout before, on the cache the shards left: what a later parse cost in one file.
            one, _, one_dags = _parse([repo / "one-file" / "policy_pipeline.py"], repo, home)
            assert one_dags == dags
            rows.append(Row("dag parse", f"{n} protocols, first parse (nothing cached): slowest DAG file",
                            f"{cold_slowest:.1f} s (every file {cold_wall:.1f} s)",
                            f"< {AIRFLOW_TIMEOUT:.0f} s (Airflow's timeout)",
                            cold_slowest < AIRFLOW_TIMEOUT))
            target = 10.0 if n == 2000 else 3.0
            rows.append(Row("dag parse", f"{n} protocols, later parses: every DAG file, {PARSING_PROCESSES} at a time",
                            f"{warm_wall:.1f} s (slowest file {warm_slowest:.1f} s)", f"< {target:.0f} s",
                            warm_wall < target))
            rows.append(Row("dag parse", f"{n} protocols, later parses: the whole book in one DAG file (before)",
                            f"{one:.1f} s ({one / warm_slowest:.1f}x the slowest shard)",
                            f"< {AIRFLOW_TIMEOUT:.0f} s (Airflow's timeout)", one < AIRFLOW_TIMEOUT))
    return rows

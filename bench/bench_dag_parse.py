"""Issue 19, item 4: what Airflow's dag-processor pays to parse the DAG file for a state's whole rule book.

Copies of the wildfire sample under new ids (300 and 2,000 files, generated here, never committed) in a
repository directory of their own; the DAG file (dags/policy_pipeline.py) is executed in a fresh process,
as the dag-processor does, with an empty protocol-head cache (cold: every file new) and again with the
cache its first parse left (warm: what every later parse of an unchanged rule book costs). The whole
process is timed, Airflow's import included: it is what the dag-processor's timeout counts.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.table import Row

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "include" / "protocols" / "wildfire-aid-2024.yml"
PARSE = (
    "import runpy, sys; g = runpy.run_path(sys.argv[1]); "
    "print(len({v.dag_id for v in g.values() if type(v).__name__ == 'DAG'}))"
)
AIRFLOW_TIMEOUT = 50.0  # [dag_processor] dag_file_processor_timeout's default


def _repo(n: int, base: Path) -> Path:
    repo = base / f"repo-{n}"
    protocols = repo / "include" / "protocols"
    protocols.mkdir(parents=True)
    shutil.copy(ROOT / "include" / "rollback.sh", repo / "include" / "rollback.sh")
    data = yaml.safe_load(SAMPLE.read_text())
    for i in range(n):
        d = copy.deepcopy(data)
        d["metadata"]["id"] = f"bench-protocol-{i:05d}"
        (protocols / f"bench-protocol-{i:05d}.yml").write_text(yaml.safe_dump(d, sort_keys=False))
    return repo


def _parse(repo: Path, home: Path) -> tuple[float, int]:
    env = {**os.environ, "HMS_REPO": str(repo), "HMS_HOME": str(home),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT / "src"), str(ROOT)])}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PARSE, str(ROOT / "dags" / "policy_pipeline.py")], env=env,
                         capture_output=True, text=True, timeout=600, check=True)
    return time.perf_counter() - t0, int(out.stdout.strip().splitlines()[-1])


def run() -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (300, 2000):
            repo, home = _repo(n, Path(tmp)), Path(tmp) / f"home-{n}"
            cold, dags = _parse(repo, home)
            warm, _ = _parse(repo, home)
            assert dags == n + 1, f"{dags} DAGs for {n} protocols (+ the intake)"
            rows.append(Row("dag parse", f"{n} protocols, first parse (nothing cached)", f"{cold:.1f} s",
                            f"< {AIRFLOW_TIMEOUT:.0f} s (Airflow's timeout)", cold < AIRFLOW_TIMEOUT))
            target = 10.0 if n == 2000 else 3.0
            rows.append(Row("dag parse", f"{n} protocols, later parses (heads cached)", f"{warm:.1f} s",
                            f"< {target:.0f} s", warm < target))
    return rows

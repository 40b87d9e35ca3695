"""``make demo``: the main job end to end on this machine, in the seed's one-line-per-stage style.

For each sample protocol: pack → test (cases + simulation) → OPA scan → two clerk approvals →
promote staging → preprod (+ chaos) → prod scheduled a few seconds ahead → wait for the flip →
check the decision service's answer. Then a one-command rollback and the audit chain check.

The demo works in its own registry (``out/demo-home``, reset each run) so it can be repeated.
Its protocol copies carry the next local midnight as effective time, as a scheduler would set it,
so the legal rule set's "effective time is in the future" holds whatever day the demo runs;
the prod activation itself is brought forward with ``--schedule +Ns`` (a scheduler moving it).
Airflow is not used here yet (see README: the DAG is work in progress).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "out"
HOME = OUT / "demo-home"


def _protocol_copy(src: Path, tz: str) -> Path:
    from zoneinfo import ZoneInfo

    data = yaml.safe_load(src.read_text())
    midnight = (datetime.now(ZoneInfo(tz)) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    data["metadata"]["effective_at"] = midnight.isoformat()
    dst = OUT / "demo-protocols" / src.name
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return dst


def run() -> int:
    shutil.rmtree(HOME, ignore_errors=True)
    os.environ["HMS_HOME"] = str(HOME)
    os.environ.pop("HMS_DATABASE_URL", None)
    os.environ.setdefault("HMS_ACTOR", "demo-pipeline")
    from hms.cli import main as hms
    from hms.pipeline_config import load_pipeline_config

    config = load_pipeline_config()
    rollback = str(ROOT / "include" / "rollback.sh")
    os.environ["HMS_BIN"] = str(Path(sys.executable).parent / "hms")

    def step(*args: str) -> None:
        rc = hms(list(args))
        if rc:
            raise SystemExit(rc)

    for src in sorted((ROOT / "include" / "protocols").glob("*.yml")):
        proto = _protocol_copy(src, config.timezone)
        pkg = OUT / f"{src.stem}.tgz"
        print(f"\n[build] 📦 {src.relative_to(ROOT)} (effective time: next local midnight)", flush=True)
        step("policy", "pack", str(proto), "--out", str(pkg))
        step("policy", "test", str(pkg))
        step("policy", "simulate", str(pkg), "--report", str(OUT / f"{src.stem}-report.html"))
        step("scan", str(pkg), "--rules", "privacy,ethics,legal")
        ref = f"{src.stem}@{yaml.safe_load(proto.read_text())['metadata']['version']}"
        step("rule", "review", ref, "--user", "alice", "--role", "legal", "--approve", "--comment", "authority checked")
        step("rule", "review", ref, "--user", "bob", "--role", "budget", "--approve", "--comment", "within budget")
        step("promote", str(pkg), "--targets", ",".join(config.environment_names), "--rollback", rollback,
             "--schedule", "+4s")
        step("chaos", "run", "--target", config.chaos.environment, "--time", "4s", "--protocol", src.stem)
        time.sleep(1)
        step("rule", "smoke", ref, "--env", config.environment_names[-1], "--expect-live")
        step("rule", "status", src.stem)
    print("\n[rollback] one command: include/rollback.sh wildfire-aid-2024 prod", flush=True)
    import subprocess

    rc = subprocess.run([rollback, "wildfire-aid-2024", config.environment_names[-1]], check=False).returncode
    if rc:
        return rc
    step("audit", "verify")
    rc = _airflow_run(config)
    if rc:
        return rc
    print(f"\n[demo] ✅ done; reports in {OUT.relative_to(ROOT)}/*-report.html, registry in {HOME.relative_to(ROOT)}")
    return 0


_DAG_TEST = """
import sys
sys.path.insert(0, "plugins")
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder="dags").dags["policy_wildfire-aid-2024"]
run = dag.test(run_conf={"effective_at": "+8s", "chaos_window": "3s"})
print(f"[airflow] policy_wildfire-aid-2024 run {run.run_id}: {run.state}")
sys.exit(0 if str(run.state).endswith("success") else 1)
"""


def _airflow_run(config) -> int:
    """The same job as the Airflow DAG, run by Airflow's ``dag.test`` (operators, deferrable sensors inline)."""
    import subprocess

    home = OUT / "demo-airflow"
    shutil.rmtree(home, ignore_errors=True)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "HMS_HOME": str(home / "hms"),
        "HMS_ACTOR": "airflow",
    }
    hms_bin = str(Path(sys.executable).parent / "hms")
    print("\n[airflow] the pipeline DAG, run by Airflow (dag.test) on a fresh registry", flush=True)
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env, check=True,
                   capture_output=True)
    proto = str(ROOT / "include" / "protocols" / "wildfire-aid-2024.yml")
    for args in (["rule", "push", proto],
                 ["rule", "review", "wildfire-aid-2024@3", "--user", "alice", "--role", "legal", "--approve"],
                 ["rule", "review", "wildfire-aid-2024@3", "--user", "bob", "--role", "budget", "--approve"]):
        subprocess.run([hms_bin, *args], env=env, check=True)
    r = subprocess.run([sys.executable, "-c", _DAG_TEST], cwd=ROOT, env=env, capture_output=True, text=True)
    for line in (r.stdout + r.stderr).splitlines():
        if "[hms_operators.steps]" in line or line.startswith("[airflow]"):
            print(line.split("[info     ] ")[-1].split(" [hms_operators.steps]")[0], flush=True)
    if r.returncode:
        print(r.stderr[-2000:], file=sys.stderr)
    return r.returncode


if __name__ == "__main__":
    sys.exit(run())

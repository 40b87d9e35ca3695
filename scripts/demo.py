"""``make demo``: the main job end to end on a real Airflow, in the seed's one-line-per-stage style.

1. A real Airflow (api-server, scheduler, dag-processor, triggerer; ``.airflow/``), the same
   stack ``make up`` starts, with the repository's DAGs and the HMS plugin (and the HMS API in it).
2. A registry of its own (``out/demo-home``, reset on every run) and the law in force today:
   wildfire-aid-2024 v2 ($800 per member), through the seed's command line: pack, test, scan
   (recorded) as this machine's OS account (the embedded registry's operator); alice and bob each
   ``hms login`` to Airflow and approve with ``hms rule review`` — the HMS API takes who they are
   from their own tokens (``out/demo-logins/``, mode 0600); ``hms promote`` to staging and preprod,
   the chaos job in preprod (recorded: prod needs a passing chaos for this exact hash), then
   ``hms promote … --schedule now``.
3. The new version, v3 ($1,000 per member), is pushed and its DAG run started through Airflow's
   REST API; two clerks approve it through the HMS REST API inside Airflow when the review
   sensor waits; the prod effective time is a few seconds ahead; the run is followed to prod live.
4. The prod decision service (started in step 2, never restarted) answers under v3, then under
   v2 again after the one-command rollback. The audit chain is checked against the signed
   checkpoints the pipeline published, and v3's evidence is exported and verified offline
   (``out/evidence-wildfire-aid-2024-v3.json``: bundle, signed statements, policy, checkpoints, keys).
5. The stack stays up for a look at the UI (URL and logins printed); ``make down`` stops it.

Nothing here depends on the date the demo runs: the protocol copies take effect at the start of
today in the pipeline's zone (already passed, so each version is in force from the moment it is
put in force, not retroactively — hms.effective_time), v3's run asks for prod 15 s after its
schedule step (later than its effective time, so allowed), and the demo's pipeline settings are
the repository's without freeze windows (out/demo-pipeline.yml), which are calendar dates and a
weekly slot the demo could otherwise run into.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out"
HOME = OUT / "demo-home"
AIRFLOW_HOME = ROOT / ".airflow"
PROTOCOL = ROOT / "include" / "protocols" / "wildfire-aid-2024.yml"
BIN = Path(sys.executable).parent
FAMILY_OF_FOUR = {"household_size": 4, "household_income": 40000, "county_fire_declared": True}
REPLAYED = {
    "household_size": "replay of a change of the per-member amount on real decisions",
    "household_income": "replay of a change of the income limit on real decisions",
}


def say(line: str) -> None:
    print(line, flush=True)


def hms(*args: str, quiet: bool = False, clerk: str | None = None, stdin: str | None = None) -> str:
    """``hms …`` as the OS account (the operator of this embedded registry), or as a clerk who logged in."""
    env = {**os.environ, "HMS_CREDENTIALS": str(credentials(clerk))} if clerk else None
    r = subprocess.run([str(BIN / "hms"), *args], capture_output=True, text=True, check=False, env=env, input=stdin)
    if r.returncode:
        raise SystemExit(f"hms {' '.join(args)} failed (exit {r.returncode}):\n{r.stdout}{r.stderr}")
    if not quiet:
        for line in r.stdout.splitlines():
            say(line)
    return r.stdout


def credentials(clerk: str) -> Path:
    """Each clerk's own token file (``hms login`` writes it 0600): two people, two logins, one machine."""
    return OUT / "demo-logins" / f"{clerk}.json"


def log_in(stack: Any, clerk: str) -> None:
    hms("login", "--api", stack.url, "--username", clerk, "--password-stdin", clerk=clerk, stdin=stack.users[clerk],
        quiet=True)
    say(f"[login] {clerk} logged in to {stack.url} (token in {credentials(clerk).relative_to(ROOT)}, mode 0600)")


def protocol_copy(version: int, tz: str, **params: Any) -> Path:
    """The sample effective from the start of today (local); other versions recompute their expectations."""
    import copy

    from hms import clock
    from hms.protocol import from_data, load

    data = copy.deepcopy(load(PROTOCOL).data)
    today = clock.now().astimezone(ZoneInfo(tz)).replace(hour=0, minute=0, second=0, microsecond=0)
    data["metadata"]["effective_at"] = today.isoformat()
    # The demo's office keeps size and income in clear in the decision log, saying why, so that v3's replay
    # can count what it changes in the decisions v2 made (hashed, as by default, they could not be replayed;
    # the compliance scan lists both for the reviewers).
    for name, why in REPLAYED.items():
        data["inputs"][name].update(log="keep", log_purpose=why)
    if params:
        data["metadata"]["version"] = version
        data["parameters"].update(params)
        rules = from_data(data, f"v{version}").ruleset  # cases are checked for shape at load, not run
        for case in data["tests"]:  # the earlier law's answers, computed by its own rules
            out = rules.decide(case["input"])
            case["expect"] = {k: out.get(k, v) for k, v in case["expect"].items()}
    dst = OUT / "demo-protocols" / f"{PROTOCOL.stem}-v{version}.yml"
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return dst


def demo_settings() -> Path:
    """The repository's pipeline settings without freeze windows: the demo must run on any day at any hour."""
    data = yaml.safe_load((ROOT / ".hms-ci" / "policy-pipeline.yml").read_text(encoding="utf-8"))
    data["freeze_windows"] = []
    path = OUT / "demo-pipeline.yml"
    path.write_text("# make demo: .hms-ci/policy-pipeline.yml without its freeze windows\n"
                    + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def start_service(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [str(BIN / "hms"), "serve", "--env", "prod", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=(OUT / "demo-serve.log").open("wb"),
    )
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"hms serve did not become ready; see {OUT / 'demo-serve.log'}")


def ask(port: int, when: str) -> None:
    r = httpx.post(f"http://127.0.0.1:{port}/v1/protocols/wildfire-aid-2024/decide", json={"input": FAMILY_OF_FOUR})
    body = r.json()
    if r.status_code != 200:
        say(f"[decide] {when}: {r.status_code} {body}")
        return
    say(
        f"[decide] {when}: family of four in a declared county → ${body['outputs']['amount']:,.0f} "
        f"(prod serves v{body['version']}, bundle {body['bundle_sha256'][:12]})"
    )


def law_in_force_today(config: Any, stack: Any) -> None:
    v2 = protocol_copy(2, config.timezone, per_member=800, max_payment=4000)
    pkg = OUT / "wildfire-aid-2024-v2.tgz"
    say("\n[today] the law in force: wildfire-aid-2024 v2 ($800 per member), through the seed's command line")
    hms("policy", "pack", str(v2), "--out", str(pkg))
    hms("policy", "test", str(pkg), "--record", quiet=True)
    say("[test] ✅ 9 tests (v2, both backends) and the simulation within its budget")
    scanned = hms("scan", str(pkg), "--rules", ",".join(config.compliance.rule_sets), "--record", quiet=True)
    say("[comp] " + scanned.splitlines()[0].removeprefix("[scan] "))  # its counts, and what is left for review
    for user, role in (("alice", "legal"), ("bob", "budget")):  # each as herself: the API takes who from the token
        log_in(stack, user)
        hms("rule", "review", "wildfire-aid-2024@2", "--role", role, "--approve", "--comment", "ok", clerk=user)
    rollback = str(ROOT / "include" / "rollback.sh")
    names = config.environment_names
    chaos_env = config.chaos.environment
    rehearsals = names[: names.index(chaos_env) + 1]  # staging, preprod: where the chaos job runs
    hms("promote", str(pkg), "--targets", ",".join(rehearsals), "--rollback", rollback, quiet=True)
    hms("chaos", "run", "--target", chaos_env, "--time", "3s", "--record", quiet=True)
    say(f"[chaos] ✅ {chaos_env} survived faults (recorded for v2's hash)")
    hms("promote", str(pkg), "--targets", ",".join(names), "--rollback", rollback, "--schedule", "now")


def airflow_run(stack: Any, config: Any, port: int) -> str:
    from hms.airflow_api import AirflowApi
    from hms.ci import CiRun, TaskEvent, execute

    v3 = protocol_copy(3, config.timezone)
    say("\n[airflow] the new version, v3 ($1,000 per member), through the pipeline DAG on the running Airflow")
    pushed = json.loads(hms("rule", "push", str(v3), "--json", quiet=True))
    sha = pushed["sha256"]
    say(f"[intake] 📦 {pushed['id']} recorded, sha256:{sha[:12]}")
    api = AirflowApi(stack.url, "admin", stack.users["admin"])
    api.login()
    run = CiRun(ROOT, "wildfire-aid-2024", v3, sha, {"sha256": sha, "effective_at": "+15s", "chaos_window": "3s"})
    say(f"[airflow] {stack.url}/dags/{run.dag_id}/runs/{run.run_id}")

    def clerks_and_questions(ev: TaskEvent) -> None:
        if ev.task_id == "review.approvals" and ev.state == "deferred":
            for user, role, comment in (("alice", "legal", "authority checked"), ("bob", "budget", "within budget")):
                with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {stack.token(user)}"}) as c:
                    r = c.post(f"/hms/api/reviews/{sha}/approve", json={"comment": comment, "role": role})
                say(f"[review] {user} ({role}) approves through {stack.url}/hms/api/reviews: {r.status_code}")
                if r.status_code != 200:
                    raise SystemExit(f"the review API refused {user}: {r.text}")
        if ev.task_id == "prod.schedule" and ev.state == "success":
            ask(port, "before the effective time")

    return execute(run, config.environment_names, tz=config.timezone, api=api, timeout=600, out=say,
                   on_event=clerks_and_questions)


def main() -> int:
    from devtools.airflow_stack import AirflowStack, StackError, _load_state, terminate
    from hms.chaos import free_port
    from hms.pipeline_config import load_pipeline_config

    shutil.rmtree(HOME, ignore_errors=True)
    OUT.mkdir(exist_ok=True)
    os.environ.update({"HMS_HOME": str(HOME), "HMS_BIN": str(BIN / "hms")})
    shutil.rmtree(OUT / "demo-logins", ignore_errors=True)
    for var in ("HMS_DATABASE_URL", "HMS_ACTOR", "HMS_TOKEN", "HMS_API"):  # this machine's registry, as its OS account
        os.environ.pop(var, None)
    os.environ["HMS_CREDENTIALS"] = str(OUT / "demo-logins" / "operator.json")  # the operator never logs in
    os.environ["HMS_PIPELINE_CONFIG"] = str(demo_settings())
    config = load_pipeline_config()
    hms("db", "upgrade", quiet=True)

    state = _load_state(AIRFLOW_HOME)
    if state:
        say(f"[airflow] stopping the stack already running under {AIRFLOW_HOME}")
        terminate(AIRFLOW_HOME, state.get("pids", {}).values())
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)
    import socket

    with socket.socket() as s:
        ui_port = 8080 if s.connect_ex(("127.0.0.1", 8080)) != 0 else free_port()
    stack = AirflowStack(AIRFLOW_HOME, port=ui_port, env={"HMS_HOME": str(HOME),
                                                        "HMS_PIPELINE_CONFIG": os.environ["HMS_PIPELINE_CONFIG"]})
    # Airflow first: the clerks are Airflow users, and the HMS API inside its api-server is where they act.
    say(f"[airflow] starting Airflow 3 (api-server, scheduler, dag-processor, triggerer) at {stack.url} …")
    t0 = time.monotonic()
    try:
        stack.start()
    except StackError as e:
        say(f"[airflow] ❌ did not start: {e}")
        return 1
    say(f"[airflow] up in {time.monotonic() - t0:.0f} s")
    port = free_port()
    try:
        law_in_force_today(config, stack)
        service = start_service(port)
    except BaseException:
        stack.stop()
        raise
    try:
        ask(port, "today")
        try:
            final = airflow_run(stack, config, port)
        except BaseException:
            stack.stop()
            raise
        if final != "success":
            say(f"[airflow] logs: {AIRFLOW_HOME / 'logs'}; the stack is left running for a look (make down)")
            return 1
        ask(port, "after the effective time")
        say("\n[rollback] one command: include/rollback.sh wildfire-aid-2024 prod")
        # Outside the run: the rollback notes it on the Airflow run that deployed v3 (the grid tells the truth).
        notes = {"HMS_AIRFLOW_URL": stack.url, "HMS_AIRFLOW_USER": "admin",
                 "HMS_AIRFLOW_PASSWORD": stack.users["admin"]}
        subprocess.run([str(ROOT / "include" / "rollback.sh"), "wildfire-aid-2024", "prod"], check=True,
                       env={**os.environ, **notes})
        time.sleep(0.5)
        ask(port, "after the rollback")
        say("\n[decisions] prod's decision log: every answer, inputs as the protocol declares them logged")
        hms("decisions", "list", "--protocol", "wildfire-aid-2024", "--env", "prod", "--since", "1h")
        hms("audit", "verify", "--checkpoint", str(HOME / "checkpoints"))
        # What an inspector would ask for: everything that put v3 in force, checked without the database.
        hms("evidence", "export", "wildfire-aid-2024@3", "--out", str(OUT / "evidence-wildfire-aid-2024-v3.json"))
        hms("evidence", "verify", str(OUT / "evidence-wildfire-aid-2024-v3.json"))
    finally:
        service.terminate()
        service.wait(timeout=10)
    try:  # the stack stays up for people, as after `make up`: a push then starts its pipeline
        stack.enable_intake()
        say("[airflow] intake on: hms_intake starts a pipeline run for each new bundle within a minute")
    except StackError as e:
        say(f"[airflow] ❌ intake still paused ({e}): turn hms_intake on in the UI")
    say(f"\n[demo] ✅ done. Airflow UI: {stack.url}  (clerk pages: Reviews and Deploys in the sidebar)")
    say("[demo] logins: " + ", ".join(f"{u} / {p}" for u, p in stack.users.items()))
    say(f"[demo] registry: {HOME.relative_to(ROOT)}; reports: out/; stop Airflow with: make down")
    return 0


if __name__ == "__main__":
    sys.exit(main())

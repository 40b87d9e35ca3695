"""``hms ci run CONFIG [--protocol ID]``: run the policy pipeline like CI does, and exit with its outcome."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from hms.cli import emit
from hms.errors import BadInput

if TYPE_CHECKING:
    from hms.ci import CiRun

DEFAULT_AIRFLOW_URL = "http://127.0.0.1:8080"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ci", help="run the policy pipeline (through Airflow when it runs) and follow it")
    ps = p.add_subparsers(dest="ci_command", required=True)
    r = ps.add_parser(
        "run",
        help="trigger the pipeline DAG of each protocol (or one), print one line per stage, exit 0/1 with the result",
    )
    r.add_argument("config", help="the pipeline config, e.g. .hms-ci/policy-pipeline.yml")
    r.add_argument("--protocol", help="only this protocol id (default: every file in include/protocols)")
    r.add_argument(
        "--bundle",
        help="run the pipeline on this recorded bundle (id@version or sha256, as `hms rule push` prints it) "
        "instead of packing the protocol's file",
    )
    r.add_argument("--effective-at", help="override the effective time (HH:MM, ISO with offset, now, +30s)")
    r.add_argument("--chaos-window", help="chaos duration in the chaos environment, e.g. 5s")
    r.add_argument(
        "--airflow-url",
        default=os.environ.get("HMS_AIRFLOW_URL"),
        help="Airflow API server (env HMS_AIRFLOW_URL; default: the stack `make up` started, else "
        f"{DEFAULT_AIRFLOW_URL} when it answers, else the DAG runs here under dag.test)",
    )
    r.add_argument(
        "--user", default=os.environ.get("HMS_AIRFLOW_USER", "admin"), help="Airflow user (HMS_AIRFLOW_USER)"
    )
    r.add_argument(
        "--password-env",
        default="HMS_AIRFLOW_PASSWORD",
        help="name of the environment variable holding the Airflow password (never on the command line)",
    )
    r.add_argument("--local", action="store_true", help="do not look for an Airflow server: run the DAG here")
    r.add_argument("--timeout", type=float, default=3600.0, help="give up following after this many seconds")
    r.add_argument("--json", action="store_true")
    r.set_defaults(handler=cmd_run)


def _repo_of(config: Path) -> Path:
    """The checkout the config belongs to: the nearest parent holding include/protocols."""
    for d in [config.resolve().parent, *config.resolve().parents]:
        if (d / "include" / "protocols").is_dir():
            return d
    raise BadInput("no include/protocols next to or above the pipeline config", where=str(config))


def _started_stack(repo: Path, user: str, password: str) -> tuple[str, str]:
    """URL (and, unless given, the user's password) of the stack ``make up`` wrote to .airflow/stack.json."""
    import json

    try:
        state = json.loads((repo / ".airflow" / "stack.json").read_text())
    except (OSError, ValueError):
        return DEFAULT_AIRFLOW_URL, password
    return state.get("url", DEFAULT_AIRFLOW_URL), password or state.get("users", {}).get(user, "")


def _pushed_bundle_run(repo: Path, args: argparse.Namespace, conf: dict[str, str]) -> list[CiRun]:
    """The one run of a bundle already recorded (``hms rule push``): its protocol's pipeline, on its hash.

    The run carries ``conf.sha256`` as the intake's runs do, so the build step fetches and verifies those
    bytes instead of packing the file, and its run id names the bundle (``bundle-<sha prefix>`` for its first run,
    with the start's UTC stamp after one that failed: ``hms.ci.choose_run``).
    """
    from dataclasses import replace

    from hms import ci, deployments
    from hms.registry.db import session_scope

    with session_scope(read_only=True) as s:
        row = deployments.resolve_bundle_row(s, args.bundle)
    if args.protocol and args.protocol != row.protocol_id:
        raise BadInput(f"bundle {args.bundle} is of {row.protocol_id}, not {args.protocol}", where="--bundle")
    try:
        (pipeline,) = ci.plan(repo, row.protocol_id, conf)  # its protocol needs a file here, and so a DAG
    except BadInput as e:
        if not e.message.startswith(f"--protocol {row.protocol_id}: no such protocol"):
            raise  # a broken protocol file: its own message
        raise BadInput(f"{row.protocol_id} has no file in {repo / 'include' / 'protocols'}, so no pipeline DAG "
                       "runs it", where="--bundle") from None
    return [replace(pipeline, sha256=row.sha256, conf={**conf, "sha256": row.sha256})]


def cmd_run(args: argparse.Namespace) -> int:
    from hms import ci
    from hms.airflow_api import AirflowApi
    from hms.pipeline_config import load_pipeline_config

    config_file = Path(args.config)
    config = load_pipeline_config(config_file)  # bad config → exit 2 before anything starts
    os.environ["HMS_PIPELINE_CONFIG"] = str(config_file.resolve())
    repo = _repo_of(config_file)
    conf = {k: v for k, v in (("effective_at", args.effective_at), ("chaos_window", args.chaos_window)) if v}
    runs = _pushed_bundle_run(repo, args, conf) if args.bundle else ci.plan(repo, args.protocol, conf)

    api = None
    if not args.local:
        url, password = args.airflow_url, os.environ.get(args.password_env, "")
        if not url:  # the stack `make up` started from this checkout, if any; else Airflow's default port
            url, password = _started_stack(repo, args.user, password)
        candidate = AirflowApi(url, args.user, password)
        if candidate.healthy():
            candidate.login()
            api = candidate
        elif args.airflow_url:
            raise BadInput(f"no Airflow API server answers at {url}", where="--airflow-url")

    results = {}
    lines: list[str] = []

    def out(line: str) -> None:
        lines.append(line)
        if not args.json:
            print(line, flush=True)

    for run in runs:
        results[run.protocol_id] = {
            "dag_id": run.dag_id,
            "run_id": run.run_id,
            "sha256": run.sha256,
            "state": ci.execute(
                run, config.environment_names, tz=config.timezone, api=api, timeout=args.timeout, out=out
            ),
        }
    ok = all(r["state"] == "success" for r in results.values())
    # The stage lines were printed as they happened; --json prints the whole outcome once, at the end.
    emit(args, {"ok": ok, "mode": "airflow" if api else "local", "runs": results, "lines": lines}, [])
    return 0 if ok else 1

"""Build the pipeline DAG of one protocol: build → test → compliance → review → staging →
preprod (+ chaos) → prod (scheduled) → flip → publish, with rollback on failure.

The stages are ``hms`` commands (steps.py); the waits are deferrable sensors
(sensors.py). Settings come from .hms-ci/policy-pipeline.yml. A bundle's first run
(intake, ``hms ci run``) carries ``run_id = bundle-<sha256 prefix>``, so the intake
never starts it twice; a later run of it gets an id of its own (``bundle-<sha12>-<UTC
stamp>``, or the trigger form's), and ``max_active_runs=1`` keeps two runs of one
protocol from racing through the environments.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Param, TaskGroup, TriggerRule

from hms.pipeline_config import PipelineConfig
from hms.protocol_heads import ProtocolHead
from hms.pushed_bundles import PushedBundles
from hms_operators.rollback import FailRunOperator, RollbackRunOperator
from hms_operators.sensors import ActivationSensor, ReviewSensor
from hms_operators.steps import hms_step

SHA = "{{ ti.xcom_pull(task_ids='build.bundle')['sha256'] }}"
REF = "sha256:" + SHA


def dag_id_for(protocol_id: str) -> str:
    return f"policy_{protocol_id}"


def _doc(p: ProtocolHead, config: PipelineConfig, path: Path) -> str:
    envs = " → ".join(config.environment_names)
    return f"""
### {p.title} (`{p.id}` v{p.version})

*Authority:* {p.authority or "— (missing: the legal scan will fail)"} · *Author:* {p.author} ·
*Effective (this file):* `{p.effective_at}` · *File:* `{path.name}`{_unchecked(p)} — a run deploys the
bundle it builds or is given, and prod takes **that bundle's** effective time (or the moment every gate is met,
once it has passed: in force from then, not retroactively).

Stages: build → test (cases + simulation) → compliance (OPA) → review ({config.approvals.required} approvals,
roles {", ".join(config.approvals.roles)}) → {envs}, the last one scheduled at the effective time, then flip
(verified) and publish. Any failure after a deploy rolls back every environment this run touched
(`include/rollback.sh --run <run_id>`) and the run ends **failed**.

Trigger form: `bundle` picks a pushed bundle of this protocol to run (version · short sha256 · status; empty: the
intake's bundle, else this file packed now — which fails at build if its version is recorded with other bytes);
`effective_at` (HH:MM, ISO with offset, `now`, `+30s`) sets a later time than the bundle's own; one
earlier than it, or in the past, is refused before any environment is touched;
`chaos_window` sets the preprod chaos duration; `chaos_replicas` / `chaos_min_health` can only make chaos harsher.
"""


NO_PICK = "— none: the intake's bundle (conf.sha256), else the repository file, packed now"


def bundle_param(protocol_id: str, pushed: PushedBundles) -> Param:
    """The trigger form's ``bundle`` field: a drop-down of the protocol's pushed bundles (hms.pushed_bundles).

    A JSON-schema ``enum`` with ``values_display`` (Airflow 3.3's form shows the labels and sends the value,
    the full sha256). The list is what the registry held when Airflow last parsed this file, so a bundle pushed
    since appears after the next parse. With the registry unreachable at parse time there is no list: a
    free-text field says why, and the build step checks what is typed (a pushed bundle of this protocol).
    """
    title = "Bundle to run"
    empty = "Empty: the intake's bundle, else the repository file as packed now."
    if pushed.unavailable is not None:
        return Param(
            None,
            type=["null", "string"],
            title=title,
            description=(
                "A pushed bundle of this protocol: its sha256, a unique prefix (at least 8 hex digits) or "
                f"{protocol_id}@VERSION. There is no list to pick from because the registry could not be read when "
                f"Airflow parsed this DAG ({pushed.unavailable}); the build step checks what you type. {empty}"
            ),
        )
    choices = pushed.of(protocol_id)
    return Param(
        None,
        type=["null", "string"],
        title=title,
        enum=[None, *(c.sha256 for c in choices)],
        values_display={None: NO_PICK, **{c.sha256: c.label for c in choices}},
        description=(
            "A pushed bundle of this protocol, newest version first (version · short sha256 · status), as the "
            f"registry held them when Airflow last parsed this DAG. {empty}"
        ),
    )


def _unchecked(p: ProtocolHead) -> str:
    return "" if p.checked else " (not checked yet: its build step validates it; a later parse shows the verdict)"


def build_broken_dag(path: Path, error: Exception | str) -> DAG:
    """A DAG that shows (and fails with) why a protocol file does not load."""
    from hms_operators.rollback import FailRunOperator

    dag_id = "policy_" + "".join(c if c.isalnum() or c in "-_" else "_" for c in path.stem)[:200]
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["hms", "policy", "broken"],
        doc_md=(
            f"### `{path.name}` does not load\n\n```\n{error}\n```\nFix the file; this DAG then becomes the pipeline."
        ),
    ) as dag:
        FailRunOperator(
            task_id="protocol_does_not_load", doc_md=str(error), message=f"{path.name} does not load: {error}"
        )
    return dag


def trigger_form(p: ProtocolHead, config: PipelineConfig, pushed: PushedBundles | None) -> dict[str, Param]:
    """The run's params: the trigger form's fields."""
    return {
        "bundle": bundle_param(p.id, pushed or PushedBundles(unavailable="not read")),
        "effective_at": Param(
            None, type=["null", "string"], description="Override the effective time (HH:MM, ISO, now, +30s)"
        ),
        "chaos_window": Param(config.chaos.time, type="string", pattern=r"^\d+[smh]$", description="Chaos window"),
        # A trigger may make chaos harsher (fewer replicas, a stricter health floor), never more lenient.
        "chaos_replicas": Param(
            config.chaos.replicas, type="integer", minimum=1, maximum=64, description="Chaos: replicas to run"
        ),
        "chaos_min_health": Param(
            config.chaos.min_health,
            type="number",
            minimum=config.chaos.min_health,
            maximum=1,
            description="Chaos: least share of requests answered (at least the pipeline config's)",
        ),
    }


def build_policy_dag(
    p: ProtocolHead, path: Path, config: PipelineConfig, rollback_script: Path, pushed: PushedBundles | None = None
) -> DAG:
    """The pipeline DAG of ``p``; ``pushed`` (hms.pushed_bundles.read, one query for every protocol of the DAG
    file) fills the trigger form's bundle list — None: the registry was not asked, a free-text field."""
    envs = config.environment_names
    first, middle, last = envs[0], envs[1:-1], envs[-1]
    with DAG(
        dag_id=dag_id_for(p.id),
        description=f"{p.title} v{p.version}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=["hms", "policy", p.id],
        doc_md=_doc(p, config, path),
        default_args={"retries": 0, "owner": p.author},
    ) as dag:
        # The bundle under deployment decides its effective time (hms rule deploy without a time); the file this
        # DAG was built from may be older or newer than a pushed bundle.
        effective = "{{ params.effective_at or 'effective' }}"
        with TaskGroup("build", tooltip="pack (or fetch) the bundle, record it in the registry"):
            # The trigger form's pick, else the intake's (or `hms ci --bundle`'s) conf.sha256, else the file. A pick
            # or a conf is a reference, checked to be a pushed bundle of this protocol (errors name the field).
            source = (
                "{{ params.bundle or (dag_run.conf.get('sha256') and 'sha256:' ~ dag_run.conf['sha256']) or '"
                + str(path)
                + "' }}"
            )
            field = "{{ 'params.bundle' if params.bundle else ('conf.sha256' if dag_run.conf.get('sha256') else '') }}"
            bundle = hms_step("bundle", ["rule", "push", source, "--of", p.id, "--field", field], config)
            schedule_check = hms_step(
                "schedule_check", ["rule", "check-schedule", REF, "--env", last, "--schedule", effective], config
            )
            bundle >> schedule_check
        with TaskGroup("test", tooltip="test cases through both backends, then the population simulation"):
            test = hms_step("cases_and_simulation", ["policy", "test", REF, "--record"], config, heavy=True)
            # What it would have done to the last environment's real decisions (hms.replay), beside the simulation;
            # over the pinned policy's decision_log.replay_window
            replay = hms_step("replay", ["policy", "replay", REF, "--env", last, "--record"], config, heavy=True)
            test >> replay
        with TaskGroup("compliance", tooltip="OPA: privacy, ethics, legal"):
            scan = hms_step(
                "scan", ["scan", REF, "--rules", ",".join(config.compliance.rule_sets), "--record"], config, heavy=True
            )
        with TaskGroup("review", tooltip="two clerks approve this exact bundle hash"):
            review = ReviewSensor(
                task_id="approvals",
                sha256=SHA,
                review_timeout=timedelta(hours=config.approvals.timeout_hours),
                poll_interval=config.approvals.poll_seconds,
            )
        deploy_tasks = []
        chain = [bundle, schedule_check, test, scan, review]
        for env in [first, *middle]:
            with TaskGroup(env, tooltip=f"deploy to {env} and check it answers"):
                dep = hms_step("deploy", ["rule", "deploy", REF, "--env", env, "--run-id", "{{ run_id }}"], config)
                smoke = hms_step("smoke", ["rule", "smoke", REF, "--env", env], config)
                dep >> smoke
                steps = [dep, smoke]
                if env == config.chaos.environment:
                    chaos = hms_step(
                        "chaos",
                        [
                            "chaos",
                            "run",
                            "--target",
                            env,
                            "--time",
                            "{{ params.chaos_window }}",
                            "--kill-fraction",
                            str(config.chaos.kill_fraction),
                            "--min-health",
                            "{{ params.chaos_min_health }}",
                            "--replicas",
                            "{{ params.chaos_replicas }}",
                            "--protocol",  # this protocol's golden decisions: the chaos check is its bundle's
                            p.id,
                            "--record",  # the next environment needs a passing chaos for this bundle hash
                            "--run-id",
                            "{{ run_id }}",
                        ],
                        config,
                        heavy=True,
                    )
                    smoke >> chaos
                    steps.append(chaos)
            deploy_tasks += steps
            chain[-1] >> steps[0]
            chain.append(steps[-1])
        with TaskGroup(last, tooltip=f"stage {last} as pending at the effective time"):
            stage = hms_step(
                "schedule",
                ["rule", "deploy", REF, "--env", last, "--schedule", effective, "--run-id", "{{ run_id }}"],
                config,
            )
        with TaskGroup("flip", tooltip="wait (deferred) for the effective time, then verify every replica"):
            wait = ActivationSensor(
                task_id="wait_for_effective_time",
                run_id="{{ run_id }}",
                environment=last,
                poll_interval=min(5.0, config.approvals.poll_seconds),
            )
            verify = hms_step("verify_live", ["rule", "smoke", REF, "--env", last, "--expect-live"], config)
            wait >> verify
        publish = hms_step("publish", ["rule", "publish", REF, "--run-id", "{{ run_id }}"], config)
        schedule_check >> test >> replay >> scan >> review
        chain[-1] >> stage >> wait
        verify >> publish
        deploy_tasks += [stage, wait, verify, publish]
        rollback = RollbackRunOperator(
            task_id="rollback", script=str(rollback_script), run_id="{{ run_id }}", trigger_rule=TriggerRule.ONE_FAILED
        )
        deploy_tasks >> rollback >> FailRunOperator(task_id="fail_run", run_id="{{ run_id }}")
    # The form is set once every task exists: Airflow deep-copies a DAG's params into each task made inside it
    # (airflow.sdk.bases.operator._get_parent_defaults), which was half of what parsing a big rule book cost. A
    # run's tasks still see every field: Airflow merges the DAG's params with the task's own at run time
    # (airflow.sdk.definitions.param.process_params), and the trigger form reads the DAG's.
    dag.params = trigger_form(p, config, pushed)
    return dag

"""Pipeline steps as ``hms`` commands: one operator for local mode, a pod for Kubernetes mode.

Every step of the pipeline is an ``hms …`` command. In ``local`` mode
``HmsCommandOperator`` runs it in-process on the worker (no interpreter start-up
per task); in ``kubernetes`` mode ``hms_step`` builds a KubernetesPodOperator that
runs the *same* arguments in the project image, reading the bundle from the
registry by hash (``sha256:<hex>``), which the command verifies before use. The
command writes its JSON result to ``--xcom-file`` and that becomes the task's
XCom in both modes (the pod's path is the one the xcom sidecar reads).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from airflow.sdk import BaseOperator

from hms.pipeline_config import PipelineConfig
from hms_operators.relay import HmsStepFailed, LineRelay, debugging

log = logging.getLogger(__name__)

POD_XCOM_PATH = "/airflow/xcom/return.json"
SECRET_DIR = "/var/run/hms"  # the pipeline secret, mounted from the Secret hms-registry (key pipeline-secret)


class HmsCommandOperator(BaseOperator):
    """Run ``hms <arguments>`` on the worker and return its JSON result as XCom.

    A check that fails (exit 1) or bad input (exit 2) fails the task without retry:
    running the same check again gives the same answer.

    :param arguments: the command after ``hms`` (templated), e.g. ``["policy", "test", "sha256:{{ … }}"]``
    """

    template_fields: Sequence[str] = ("arguments",)
    ui_color = "#e8f1fb"

    def __init__(self, *, arguments: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arguments = arguments

    def execute(self, context: Any) -> Any:
        run = run_hms(self.arguments, context)
        if run.code != 0:
            # One line: the command's own error (it says what and where), else which check failed. Raised from
            # None, and after the relay logged every ❌ line at ERROR (see hms_operators.relay).
            raise HmsStepFailed(run.failure_message(self.arguments)) from None
        return run.result


class HmsRun(NamedTuple):
    """One ``hms`` command's outcome: exit code, JSON result (--xcom-file) and its ``hms: error:`` line."""

    code: int
    result: Any
    failure: str | None = None

    def failure_message(self, arguments: Sequence[object]) -> str:
        command = "hms " + " ".join(map(str, arguments))
        if self.failure:
            return f"{command}: {self.failure}"
        kind = "check failed" if self.code == 1 else "bad input" if self.code == 2 else "failed"
        return f"{command}: {kind} (exit {self.code}); the ❌ lines above say why"


def run_hms(arguments: Sequence[object], context: Any = None) -> HmsRun:
    """Run ``hms <arguments>`` in this process; its output goes to the task log as it is written.

    In-process because an interpreter start per step (NumPy, SQLAlchemy) costs more than the step itself. The
    command acts as the pipeline's principal for this run, on behalf of whoever triggered it (hms.identity):
    this is the worker, so nothing needs presenting. Every line is relayed once, at its level, the moment it
    is complete (hms_operators.relay); the command's ``hms: error:`` line comes back as ``failure`` instead.
    A bug in hms (an exception, not an exit code) is one ERROR line and exit 70, unless ``debugging()``:
    then it propagates with its traceback.
    """
    from hms import identity
    from hms.cli import main

    with tempfile.TemporaryDirectory(prefix="hms-xcom-") as tmp:
        xcom = Path(tmp) / "return.json"
        argv = ["--xcom-file", str(xcom), *map(str, arguments)]
        log.info("hms %s", " ".join(argv[2:]))
        relay = LineRelay(log, fallback=sys.stderr)  # the stream of before, for the logging's own writes
        principal = identity.acting_as(_pipeline(context))
        with contextlib.redirect_stdout(relay), contextlib.redirect_stderr(relay), principal:
            try:
                code = main(argv)
            except SystemExit as e:  # argparse usage errors
                code = int(e.code or 0)
            except Exception as e:
                if debugging(log):
                    raise
                relay.failure, code = f"internal error: {type(e).__name__}: {e} (HMS_DEBUG=1 for the traceback)", 70
            finally:
                relay.close()
        if code == 0:
            relay.release_failure()
        return HmsRun(code, json.loads(xcom.read_text()) if xcom.exists() else None, relay.failure)


def _pipeline(context: Any) -> Any:
    from hms.identity import Principal

    run = context.get("dag_run") if context else None
    return Principal.pipeline(getattr(run, "run_id", None), getattr(run, "triggering_user_name", None))


def hms_step(
    task_id: str, arguments: list[str], config: PipelineConfig, *, heavy: bool = False, **kwargs: Any
) -> BaseOperator:
    """The operator for one step: heavy steps (test, compliance, chaos) run in pods in Kubernetes mode.

    Light steps (registry writes: push, deploy, smoke, publish) always run on the worker.
    """
    if not heavy or config.execution.mode != "kubernetes":
        return HmsCommandOperator(task_id=task_id, arguments=arguments, **kwargs)
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

    ex = config.execution
    return KubernetesPodOperator(
        task_id=task_id,
        name=f"hms-{task_id.replace('_', '-').replace('.', '-')}",
        namespace=ex.namespace,
        image=ex.image,
        cmds=["hms"],
        arguments=["--xcom-file", POD_XCOM_PATH, *arguments],
        env_vars=[
            k8s.V1EnvVar(
                name="HMS_DATABASE_URL",
                value_from=k8s.V1EnvVarSource(
                    secret_key_ref=k8s.V1SecretKeySelector(name="hms-registry", key="database-url")
                ),
            ),
            k8s.V1EnvVar(  # the pipeline's principal (hms.identity): the secret only the pipeline's pods get
                name="HMS_PIPELINE_SECRET",
                value_from=k8s.V1EnvVarSource(
                    secret_key_ref=k8s.V1SecretKeySelector(name="hms-registry", key="pipeline-secret")
                ),
            ),
            k8s.V1EnvVar(name="HMS_PIPELINE_SECRET_FILE", value=f"{SECRET_DIR}/pipeline.secret"),
            # A recorded check is a signed statement (hms.attest): the control plane's key, and the public keys.
            k8s.V1EnvVar(name="HMS_SIGNING_KEY", value=f"{SECRET_DIR}/control-plane.pem"),
            k8s.V1EnvVar(name="HMS_TRUSTED_KEYS", value="/etc/hms/trusted.json"),
        ],
        # The same secret as the file the CLI checks what it was given against (hms.identity.current).
        volumes=[k8s.V1Volume(name="hms-pipeline-secret", secret=k8s.V1SecretVolumeSource(
            secret_name="hms-registry", items=[k8s.V1KeyToPath(key="pipeline-secret", path="pipeline.secret"),
                                               k8s.V1KeyToPath(key="signing-key", path="control-plane.pem")],
            default_mode=0o400)),
            k8s.V1Volume(name="hms-trusted-keys",
                         config_map=k8s.V1ConfigMapVolumeSource(name="hms-trusted-keys"))],
        volume_mounts=[k8s.V1VolumeMount(name="hms-pipeline-secret", mount_path=SECRET_DIR, read_only=True),
                       k8s.V1VolumeMount(name="hms-trusted-keys", mount_path="/etc/hms", read_only=True)],
        labels={"app.kubernetes.io/part-of": "hms", "hms/step": task_id.split(".")[-1]},
        service_account_name="hms-pipeline-step",
        do_xcom_push=True,
        get_logs=True,
        on_finish_action="delete_pod",
        in_cluster=ex.in_cluster,
        deferrable=True,
        container_resources=k8s.V1ResourceRequirements(
            requests={"cpu": "500m", "memory": "512Mi"}, limits={"cpu": "2", "memory": "2Gi"}
        ),
        security_context=k8s.V1PodSecurityContext(run_as_non_root=True, run_as_user=10001, fs_group=10001),
        **kwargs,
    )

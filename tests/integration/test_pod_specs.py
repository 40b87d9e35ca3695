"""Kubernetes mode: test, scan and chaos render as KubernetesPodOperator pods that validate against the schemas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from tests.conftest import ROOT

_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, "plugins")
    import kubernetes_validate
    from airflow.dag_processing.dagbag import DagBag
    from kubernetes.client import ApiClient
    dag = DagBag(dag_folder="dags").dags["policy_wildfire-aid-2024"]
    out = {}
    for t in dag.tasks:
        kind = type(t).__name__
        if kind != "KubernetesPodOperator":
            out[t.task_id] = {"kind": kind}
            continue
        pod = ApiClient().sanitize_for_serialization(t.build_pod_request_obj())
        kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
        out[t.task_id] = {"kind": kind, "pod": pod}
    print("RESULT " + json.dumps(out))
""")


@pytest.mark.airflow
def test_heavy_steps_are_pods_with_valid_specs_and_light_steps_stay_on_the_worker(tmp_path):
    cfg = yaml.safe_load((ROOT / ".hms-ci" / "policy-pipeline.yml").read_text())
    cfg["execution"].update(mode="kubernetes", in_cluster=False, image="registry.example/hms:1.2.3")
    (tmp_path / "pipeline.yml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "t", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
        "users": [{"name": "t", "user": {"token": "not-a-secret"}}]}))
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "HMS_PIPELINE_CONFIG": str(tmp_path / "pipeline.yml"), "KUBECONFIG": str(tmp_path / "kubeconfig")}
    r = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    lines = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    assert r.returncode == 0 and lines, r.stderr[-3000:]
    tasks = json.loads(lines[-1][len("RESULT "):])
    pods = {k: v["pod"] for k, v in tasks.items() if v["kind"] == "KubernetesPodOperator"}
    assert set(pods) == {"test.cases_and_simulation", "test.replay", "compliance.scan", "preprod.chaos"}
    assert tasks["staging.deploy"]["kind"] == "HmsCommandOperator"
    for task_id, pod in pods.items():
        spec = pod["spec"]
        c = spec["containers"][0]
        assert pod["metadata"]["namespace"] == "hms-pipeline", task_id
        assert c["image"] == "registry.example/hms:1.2.3" and c["command"] == ["hms"]
        assert c["args"][:2] == ["--xcom-file", "/airflow/xcom/return.json"]
        assert spec["serviceAccountName"] == "hms-pipeline-step"
        assert spec["securityContext"]["runAsNonRoot"] is True
        db = next(e for e in c["env"] if e["name"] == "HMS_DATABASE_URL")
        assert db["valueFrom"]["secretKeyRef"] == {"name": "hms-registry", "key": "database-url"}
        assert "value" not in db  # the registry password never appears in the pod spec
        # The step acts as the pipeline (hms.identity): the secret comes from the Secret, as env and as the file
        # it is checked against; never as a value in the spec, and no HMS_ACTOR name to claim.
        secret = next(e for e in c["env"] if e["name"] == "HMS_PIPELINE_SECRET")
        assert secret["valueFrom"]["secretKeyRef"] == {"name": "hms-registry", "key": "pipeline-secret"}
        assert "HMS_ACTOR" not in {e["name"] for e in c["env"]}
        vol = next(v for v in spec["volumes"] if v["name"] == "hms-pipeline-secret")
        assert vol["secret"]["secretName"] == "hms-registry" and vol["secret"]["items"][0]["key"] == "pipeline-secret"
        mount = next(m for m in c["volumeMounts"] if m["name"] == "hms-pipeline-secret")
        assert mount["mountPath"] == "/var/run/hms" and mount["readOnly"] is True
    # The pod works on the exact bytes the build recorded: the bundle is named by its hash.
    assert any(a.startswith("sha256:") for a in pods["compliance.scan"]["spec"]["containers"][0]["args"])

"""deploy/k8s: every object validates against the Kubernetes schemas, and the pieces fit together.

kubernetes-validate checks each object against the OpenAPI schemas it ships (strict: no
unknown fields) for the oldest and the newest Kubernetes version we claim. Schemas do not
know names, selectors or RBAC, so the rest of this file checks what would otherwise only
fail in a cluster: selectors that select, probes on real paths, ports that exist, RBAC
that allows what the code does, and environments that do not drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
ENVIRONMENTS = ("staging", "preprod", "prod")
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")  # oldest we support, newest kubernetes-validate 1.37.0 ships
PIPELINE_NAMESPACE = "hms-pipeline"

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def every_object() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, doc) for p in sorted(K8S.glob("*.yaml")) for doc in load(p)]


def env_objects(env: str) -> list[dict[str, Any]]:
    return load(K8S / f"{env}.yaml")


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def test_the_manifest_set_is_the_pipeline_and_one_file_per_environment() -> None:
    assert sorted(p.name for p in K8S.glob("*.y*ml")) == sorted(["pipeline.yaml", *(f"{e}.yaml" for e in ENVIRONMENTS)])


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    ("source", "obj"), every_object(), ids=[f"{f}:{o['kind']}/{o['metadata']['name']}" for f, o in every_object()]
)
def test_every_object_validates_strictly_against_the_kubernetes_schema(
    source: str, obj: dict[str, Any], version: str
) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


def test_strict_validation_rejects_a_misspelt_field() -> None:
    deployment = one(env_objects("staging"), "Deployment", "hms-api")
    container(deployment)["readinessProbe"]["httpGet"]["pathh"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError, match="pathh"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize(("source", "obj"), every_object(), ids=[f"{f}:{o['kind']}" for f, o in every_object()])
def test_names_and_labels_are_valid_kubernetes_names(source: str, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    name = meta["name"]
    assert len(name) <= 253 and _DNS_SUBDOMAIN.fullmatch(name), name
    if obj["kind"] == "Namespace":
        assert _DNS_LABEL.fullmatch(name), name
    if obj["kind"] == "Service":
        assert _DNS_1035_LABEL.fullmatch(name), name
    labels = dict(meta.get("labels") or {})
    if obj["kind"] == "Deployment":
        labels |= obj["spec"]["template"]["metadata"]["labels"]
    for key, value in labels.items():
        prefix, _, label = key.rpartition("/")
        assert not prefix or _DNS_SUBDOMAIN.fullmatch(prefix), key
        assert len(label) <= 63 and _LABEL_NAME.fullmatch(label), key
        assert isinstance(value, str) and len(value) <= 63 and _LABEL_VALUE.fullmatch(value), (key, value)
    assert labels.get("app.kubernetes.io/part-of") == "hms"


def test_every_namespaced_object_lives_in_its_files_namespace() -> None:
    for path in sorted(K8S.glob("*.yaml")):
        objects = load(path)
        (namespace,) = [o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"]
        assert namespace == (PIPELINE_NAMESPACE if path.stem == "pipeline" else f"hms-{path.stem}")
        for o in objects:
            if o["kind"] != "Namespace":
                assert o["metadata"]["namespace"] == namespace, (path.name, o["kind"], o["metadata"]["name"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_service_selects_the_deployments_pods_on_a_declared_port(env: str) -> None:
    objects = env_objects(env)
    deployment, service = one(objects, "Deployment", "hms-api"), one(objects, "Service", "hms-api")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]

    assert selector.items() <= pod_labels.items()  # the Deployment owns its pods
    assert service["spec"]["selector"].items() <= pod_labels.items()  # the Service reaches them
    assert service["spec"]["selector"] == selector
    port_names = {p["name"] for p in container(deployment)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_hms_api_serves_its_environment_on_all_interfaces_at_the_container_port(env: str) -> None:
    c = container(one(env_objects(env), "Deployment", "hms-api"))
    args = c["args"]

    assert c["command"] == ["hms"] and args[0] == "serve"
    assert args[args.index("--env") + 1] == env
    assert args[args.index("--host") + 1] == "0.0.0.0"  # the default 127.0.0.1 is unreachable for probes
    (http,) = [p for p in c["ports"] if p["name"] == "http"]
    assert args[args.index("--port") + 1] == str(http["containerPort"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_probes_point_at_the_decision_services_health_paths_on_the_http_port(env: str) -> None:
    c = container(one(env_objects(env), "Deployment", "hms-api"))
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_the_probe_paths_are_routes_of_the_decision_service() -> None:
    app_module = pytest.importorskip("hms.service.app", reason="the decision service is not in this tree")

    class NoSource:
        environment = "staging"

        def generation(self) -> int:
            return 0

        def load(self) -> Any:
            raise AssertionError("not called: the app is built, not started")

    routes = {getattr(r, "path", None) for r in app_module.create_app(NoSource()).routes}
    probe_paths = {
        probe["httpGet"]["path"]
        for env in ENVIRONMENTS
        for key in ("readinessProbe", "livenessProbe", "startupProbe")
        for probe in [container(one(env_objects(env), "Deployment", "hms-api"))[key]]
    }
    assert probe_paths <= routes


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_hms_api_runs_locked_down_with_resources_and_writable_scratch_only(env: str) -> None:
    spec = one(env_objects(env), "Deployment", "hms-api")["spec"]["template"]["spec"]
    c = container({"spec": {"template": {"spec": spec}}})

    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001  # the image's user (Dockerfile), as in steps.py
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert set(c["resources"]) == {"requests", "limits"}
    mounted = {m["name"]: m for m in c["volumeMounts"]}
    assert set(mounted) == {v["name"] for v in spec["volumes"]}
    # Writable scratch only, plus the trusted public keys (a ConfigMap, read-only): what a replica verifies with.
    assert all("emptyDir" in v for v in spec["volumes"] if v["name"] != "trusted-keys")
    keys = next(v for v in spec["volumes"] if v["name"] == "trusted-keys")
    assert keys["configMap"]["name"] == "hms-trusted-keys" and mounted["trusted-keys"]["readOnly"] is True
    trusted = {e["name"]: e.get("value") for e in c["env"]}["HMS_TRUSTED_KEYS"]
    assert trusted.startswith(mounted["trusted-keys"]["mountPath"] + "/")
    home = {e["name"]: e.get("value") for e in c["env"]}["HMS_HOME"]
    assert home in {m["mountPath"] for m in c["volumeMounts"]}


def test_the_registry_url_comes_from_the_hms_registry_secret_and_no_secret_is_committed() -> None:
    refs = []
    for _, obj in every_object():
        assert obj["kind"] != "Secret", "secret values are created out of band, never committed"
        if obj["kind"] == "Deployment":
            for env in container(obj)["env"]:
                if "valueFrom" in env and "secretKeyRef" in env["valueFrom"]:
                    refs.append((env["name"], env["valueFrom"]["secretKeyRef"]))
    assert refs and all(r == ("HMS_DATABASE_URL", {"name": "hms-registry", "key": "database-url"}) for r in refs)
    for path in K8S.glob("*.yaml"):
        assert not re.search(r"postgres(ql)?(\+\w+)?://[^'\s…]*:[^'\s…]*@", path.read_text()), path.name


def rules_of(objects: list[dict[str, Any]], role: str) -> list[dict[str, Any]]:
    return one(objects, "Role", role)["rules"]


def allows(rules: list[dict[str, Any]], group: str, resource: str, verb: str, name: str | None = None) -> bool:
    return any(
        group in r["apiGroups"]
        and resource in r["resources"]
        and verb in r["verbs"]
        and ("resourceNames" not in r or (name is not None and name in r["resourceNames"]))
        for r in rules
    )


def bound_subjects(objects: list[dict[str, Any]], role: str) -> set[tuple[str, str]]:
    return {
        (s["namespace"], s["name"])
        for o in objects
        if o["kind"] == "RoleBinding"
        and o["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role}
        for s in o["subjects"]
        if s["kind"] == "ServiceAccount"
    }


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_hms_api_may_only_read_configmaps(env: str) -> None:
    objects = env_objects(env)
    deployment = one(objects, "Deployment", "hms-api")
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    one(objects, "ServiceAccount", account)
    roles = [
        o["roleRef"]["name"]
        for o in objects
        if o["kind"] == "RoleBinding"
        and any(s["name"] == account and s["namespace"] == f"hms-{env}" for s in o["subjects"])
    ]

    assert roles == ["hms-api-configmap-reader"]
    assert rules_of(objects, "hms-api-configmap-reader") == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_airflow_worker_may_make_every_call_the_kubernetes_target_makes(env: str) -> None:
    objects = env_objects(env)
    rules = rules_of(objects, "hms-deployer")

    # hms.targets.kubernetes: read, create, merge-patch, delete (withdrawn) the ConfigMaps; patch hms-api.
    for verb in ("get", "create", "patch", "delete"):
        assert allows(rules, "", "configmaps", verb), verb
    assert allows(rules, "apps", "deployments", "patch", name="hms-api")
    assert not allows(rules, "apps", "deployments", "patch", name="something-else")
    assert not allows(rules, "", "secrets", "get")
    assert bound_subjects(objects, "hms-deployer") == {(PIPELINE_NAMESPACE, "airflow-worker")}


def test_the_airflow_worker_may_run_kubernetes_pod_operator_steps_as_hms_pipeline_step() -> None:
    objects = load(K8S / "pipeline.yaml")
    rules = rules_of(objects, "hms-pod-launcher")

    for verb in ("create", "get", "list", "watch", "patch", "delete"):
        assert allows(rules, "", "pods", verb), verb
    assert allows(rules, "", "pods/log", "get") and allows(rules, "", "pods/exec", "create")  # logs, XCom sidecar
    assert bound_subjects(objects, "hms-pod-launcher") == {(PIPELINE_NAMESPACE, "airflow-worker")}
    one(objects, "ServiceAccount", "airflow-worker")
    one(objects, "ServiceAccount", "hms-pipeline-step")  # plugins/hms_operators/steps.py names it


def test_chaos_may_kill_hms_api_pods_in_staging_and_preprod_but_nothing_in_prod() -> None:
    for env in ("staging", "preprod"):
        objects = env_objects(env)
        assert allows(rules_of(objects, "hms-chaos"), "", "pods", "delete")
        assert bound_subjects(objects, "hms-chaos") == {(PIPELINE_NAMESPACE, "hms-pipeline-step")}
    prod = env_objects("prod")
    assert not [o for o in prod if o["kind"] in ("Role", "RoleBinding") and "chaos" in o["metadata"]["name"]]


def test_every_rolebinding_names_a_role_and_service_accounts_that_exist() -> None:
    objects = [o for _, o in every_object()]
    accounts = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects if o["kind"] == "ServiceAccount"}
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects if o["kind"] == "Role"}
    for b in (o for o in objects if o["kind"] == "RoleBinding"):
        assert (b["metadata"]["namespace"], b["roleRef"]["name"]) in roles, b["metadata"]["name"]
        for s in b["subjects"]:
            assert (s["namespace"], s["name"]) in accounts, (b["metadata"]["name"], s)


def normalized(env: str) -> list[dict[str, Any]]:
    """An environment's objects with its name replaced and the intended differences taken out."""
    text = (K8S / f"{env}.yaml").read_text().replace(env, "ENV")
    objects = [o for o in yaml.safe_load_all(text) if o is not None]
    objects = [o for o in objects if "chaos" not in o["metadata"]["name"]]
    for o in objects:
        if o["kind"] == "Deployment":
            o["spec"].pop("replicas")
    return objects


def test_the_environments_differ_only_in_name_replicas_and_chaos() -> None:
    assert normalized("preprod") == normalized("staging")
    assert normalized("prod") == normalized("staging")
    replicas = {e: one(env_objects(e), "Deployment", "hms-api")["spec"]["replicas"] for e in ENVIRONMENTS}
    assert replicas["prod"] >= 4 and all(r >= 2 for r in replicas.values())  # a restart never leaves one pod

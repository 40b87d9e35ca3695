"""docker-compose.yaml's `celery` profile for real: the CeleryExecutor with Redis and ``--scale airflow-worker=3``.

Three protocols' pipeline runs are triggered at once through Airflow's REST API, each approved by two clerks
through the HMS API; Airflow's own records (each task instance's ``hostname``, start and end) then show that the
tasks ran on the three worker containers and nowhere else, that tasks of different runs executed at the same time
on different workers, and that all three runs reached prod.

Each worker takes one task at a time (HMS_CELERY_CONCURRENCY=1): two tasks running at once are then on two
workers by construction, and the scheduler cannot hand one worker every task. The stack runs under its own
project name and free ports and is removed with its volumes at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from itertools import combinations

import pytest

from tests.docker.conftest import docker
from tests.docker.parallel_runs import Run, run_all, when
from tests.docker.stack import Stack, celery_stack, until

pytestmark = pytest.mark.docker

WORKERS = 3
PROTOCOLS = ("wildfire-aid-2024", "chip-income-cap", "federal-eitc-2026")


@pytest.fixture(scope="module")
def stack(
    redis_build, image: str, postgres_image: str, redis_image: str, tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    s = celery_stack(tmp_path_factory.mktemp("celery"), image, postgres_image, redis_image,
                     f"hms-test-celery-{os.getpid()}")
    try:
        s.up("--scale", f"airflow-worker={WORKERS}")
        yield s
    finally:
        s.down()


@pytest.fixture(scope="module")
def runs(stack: Stack) -> list[Run]:
    stack.apply_policy()
    return run_all(stack, PROTOCOLS)


def worker_hostnames(stack: Stack) -> set[str]:
    ids = stack.compose("ps", "-q", "airflow-worker").stdout.split()
    return {docker("inspect", "-f", "{{.Config.Hostname}}", i).stdout.strip() for i in ids}


def executed(run: Run) -> list[tuple[str, str, object, object]]:
    """(run, host, start, end) of each task that ran on a worker from start to end. A sensor is left out: it
    defers, and its start-to-end span is mostly the triggerer's wait, not a worker's."""
    return [
        (run.run_id, t["hostname"].split(".")[0], when(t["start_date"]), when(t["end_date"]))
        for t in run.tasks
        if t["state"] == "success" and t["start_date"] and t["end_date"] and t["hostname"]
        and not str(t.get("operator") or "").endswith("Sensor")
    ]


def test_the_celery_profile_runs_redis_and_three_healthy_workers_beside_the_default_services(stack):
    states = stack.states()
    workers = [c for c in stack.containers() if c["Service"] == "airflow-worker"]
    assert len(workers) == WORKERS and {c.get("Health") for c in workers} == {"healthy"}
    assert states["redis"] == "healthy" and states["airflow-scheduler"] == "healthy"
    executor = stack.exec("airflow-scheduler", "airflow config get-value core executor 2>/dev/null").strip()
    assert executor == "CeleryExecutor"
    # The broker answers no one without the password, and publishes no port on the host.
    assert "NOAUTH" in stack.exec("redis", "redis-cli ping 2>&1 || true")
    redis = next(c for c in stack.containers() if c["Service"] == "redis")
    assert not redis.get("Publishers") or all(not p.get("PublishedPort") for p in redis["Publishers"])


def test_three_protocols_runs_all_reach_prod(stack, runs):
    assert {r.protocol_id: r.state for r in runs} == dict.fromkeys(PROTOCOLS, "success"), "\n".join(
        r.failure for r in runs)
    for r in runs:
        live = until(f"prod serving {r.protocol_id}", lambda r=r: (now := stack.live_in_prod(r.protocol_id))
                     and now["bundle_sha256"] == r.sha256 and now, 60)
        assert live["bundle_sha256"] == r.sha256


def test_every_task_ran_on_a_worker_and_the_three_workers_each_ran_some(stack, runs):
    workers = worker_hostnames(stack)
    assert len(workers) == WORKERS
    hosts = {t["hostname"].split(".")[0] for r in runs for t in r.tasks if t["hostname"]}
    assert hosts <= workers, f"tasks ran outside the workers ({hosts - workers}): the scheduler ran them itself?"
    assert hosts == workers, f"only {len(hosts)} of the {WORKERS} workers ran tasks"


def test_the_runs_overlapped_and_their_tasks_executed_at_once_on_different_workers(runs):
    # One instant inside all three runs.
    assert max(r.start for r in runs) < min(r.end for r in runs), [(r.run_id, r.start, r.end) for r in runs]
    tasks = [t for r in runs for t in executed(r)]
    together = [
        (a, b) for a, b in combinations(tasks, 2)
        if a[0] != b[0] and a[2] < b[3] and b[2] < a[3]  # two runs' tasks, their execution spans overlapping
    ]
    assert together, "no two runs' tasks executed at the same time"
    assert all(a[1] != b[1] for a, b in together), "one worker (concurrency 1) ran two tasks at once"
    busy = {a[1] for pair in together for a in pair}
    assert len(busy) >= 2


def test_the_broker_refuses_to_start_without_a_url_safe_password(redis_image):
    missing = docker("run", "--rm", redis_image, check=False)
    assert missing.returncode != 0 and "set REDIS_PASSWORD" in missing.stderr
    unsafe = docker("run", "--rm", "-e", "REDIS_PASSWORD=a@b", redis_image, check=False)
    assert unsafe.returncode == 2 and "must be URL-safe" in unsafe.stderr

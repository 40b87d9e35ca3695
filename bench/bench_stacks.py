"""Issue 19: one protocol's run, trigger → prod, in the containers and on the local stack, side by side.

The same work both ways: the wildfire sample's DAG run from its repository file (build, test with the
population simulation, OPA scan, review — alice and bob approve through the HMS API as soon as the bundle is
on their board — staging, preprod with its 3 s chaos window, prod at the bundle's own time, flip, publish),
under the same test policy (tests.docker.stack.make_stack's: no freeze windows, reviews polled every 2 s).

- containers: docker-compose.yaml (LocalExecutor; PostgreSQL for Airflow and the registry) from the images
  `make image` and scripts/postgres-image.sh made, own project name and free ports, removed afterwards;
- local: devtools.airflow_stack (`make up`'s: the same four Airflow components as processes here, SQLite).

The figure is Airflow's own (the run's start to its end), not the poll that saw it end.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.containers import engine_answers, image
from bench.table import Row

PID = "wildfire-aid-2024"
WHAT = f"{PID}: one run, trigger → prod"


class LocalApis:
    """The local stack seen through the two APIs tests.docker.parallel_runs drives a compose stack with."""

    def __init__(self, stack) -> None:
        self.stack = stack

    def airflow(self, user: str):
        from hms.airflow_api import AirflowApi

        api = AirflowApi(self.stack.url, user, self.stack.users[user], timeout=30)
        api.login()
        return api

    def hms_api(self, user: str) -> httpx.Client:
        return httpx.Client(base_url=f"{self.stack.url}/hms/api", timeout=30,
                            headers={"Authorization": f"Bearer {self.stack.token(user)}"})


@contextmanager
def _local(here: Path, policy: Path) -> Iterator[LocalApis]:
    from devtools.airflow_stack import AirflowStack

    env = {"HMS_HOME": str(here / "hms"), "HMS_PIPELINE_CONFIG": str(policy)}
    with AirflowStack(here / "airflow", env=env) as stack:
        stack.wait_for_dags([f"policy_{PID}"])
        yield LocalApis(stack)


def run() -> list[Row]:
    why = engine_answers()
    if why is not None:
        return [Row("stacks", WHAT, f"skipped: {why}", "containers ÷ local < 2×", True)]
    from tests.docker.parallel_runs import run_all, wall_seconds
    from tests.docker.stack import make_stack

    hms_image = os.environ.get("HMS_TEST_IMAGE", "hms:0.1.0")
    image("build-image.sh", f"IMAGE={hms_image}")
    here = Path(tempfile.mkdtemp(prefix="hms-bench-stacks-"))
    (here / "compose").mkdir()
    compose = make_stack(here / "compose", hms_image, image("postgres-image.sh"), project=f"hms-bench-{os.getpid()}")
    seconds: dict[str, float] = {}
    rows: list[Row] = []
    try:
        compose.up()
        compose.apply_policy()
        (run,) = run_all(compose, (PID,))
        seconds["containers"] = wall_seconds([run])
        rows.append(Row("stacks", f"{WHAT}: in the containers (compose)", f"{seconds['containers']:.0f} s"
                        + ("" if run.state == "success" else f" (FAILED: {run.failure[:200]})"), "—",
                        run.state == "success"))
    finally:
        compose.down()
    (here / "local").mkdir()
    with _local(here / "local", compose.policy) as local:
        (run,) = run_all(local, (PID,))  # type: ignore[arg-type]  (the two APIs run_all uses)
    seconds["local"] = wall_seconds([run])
    rows.append(Row("stacks", f"{WHAT}: on the local stack (devtools.airflow_stack)", f"{seconds['local']:.0f} s"
                    + ("" if run.state == "success" else f" (FAILED: {run.failure[:200]})"), "—",
                    run.state == "success"))
    ratio = seconds["containers"] / seconds["local"]
    rows.append(Row("stacks", "  containers ÷ local (wall time)", f"{ratio:.2f}×", "< 2×", ratio < 2))
    return rows

"""The chaos job's fleet in compose mode: the decision-service containers of a Docker Compose project.

What Kubernetes mode does with pods (delete a fraction; the ReplicaSet brings them back), done with real
containers through the Docker Engine API: a random fraction of the service's containers is killed with
SIGKILL — a crash, not a stop — and each is started again ``restart_delay`` later by a supervisor thread, as a
controller would replace a pod. The engine's own restart policy does not restart a container killed through
the API (it counts as stopped by hand), so the fleet does it; and when the experiment ends however it ends,
every container it killed is running again (``stop``).

The replicas are the containers Compose labels ``com.docker.compose.project=<project>`` and
``com.docker.compose.service=hms-api-<environment>`` (``docker compose up --scale hms-api-preprod=3``); the
balancer reaches each one at its address on the project's network, port 8000, so the job runs on that network
(the ``hms-chaos`` service of docker-compose.yaml) or on the engine's host. Only containers with both labels
are ever killed, however the engine answers the listing.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlparse

import httpx

from hms.errors import BadInput

SERVICE_PORT = 8000  # hms serve's port inside the image (Dockerfile EXPOSE)
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


def service_for(environment: str) -> str:
    """The compose service of an environment's decision service (docker-compose.yaml: hms-api-<env>)."""
    return f"hms-api-{environment}"


def engine_client(docker_host: str | None = None, timeout: float = 10.0) -> httpx.Client:
    """An Engine API client over DOCKER_HOST (``unix:///var/run/docker.sock`` unless it says ``tcp://…``)."""
    host = docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    url = urlparse(host)
    if url.scheme == "unix":
        return httpx.Client(transport=httpx.HTTPTransport(uds=url.path), base_url="http://docker", timeout=timeout)
    if url.scheme == "tcp":
        return httpx.Client(base_url=f"http://{url.netloc}", timeout=timeout)
    raise BadInput(f"DOCKER_HOST {host!r}: only unix:// and tcp:// engines are supported", where="DOCKER_HOST")


@dataclass
class Replica:
    id: str
    name: str
    url: str
    killed_at: float | None = None  # monotonic time of the kill; None: running


class ComposeFleet:
    """The containers of one compose service; killed ones are started again after ``restart_delay``."""

    def __init__(
        self, project: str, service: str, *, engine: httpx.Client | None = None, restart_delay: float = 0.5
    ) -> None:
        self.project, self.service = project, service
        self.engine = engine or engine_client()
        self.restart_delay = restart_delay
        self.kills = 0
        self.restarts = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        try:
            running = self._listing()
        except httpx.HTTPError as e:
            raise BadInput(f"no Docker engine answers ({e}): compose chaos needs one", where="DOCKER_HOST") from e
        if not running:
            raise BadInput(
                f"compose project {project!r} has no running {service} container "
                f"(docker compose -p {project} up -d {service})",
                where="execution.compose_project",
            )
        self.replicas = [Replica(c["Id"], c["Names"][0].lstrip("/"), self._url(c["Id"])) for c in running]
        self._supervisor = threading.Thread(target=self._supervise, name="compose-chaos-supervisor", daemon=True)
        self._supervisor.start()

    def _listing(self) -> list[dict]:
        labels = [f"{PROJECT_LABEL}={self.project}", f"{SERVICE_LABEL}={self.service}"]
        r = self.engine.get("/containers/json", params={"filters": json.dumps({"label": labels})})
        r.raise_for_status()
        return [
            c for c in r.json()
            if (c.get("Labels") or {}).get(PROJECT_LABEL) == self.project
            and (c.get("Labels") or {}).get(SERVICE_LABEL) == self.service
        ]

    def _url(self, container_id: str) -> str:
        """The container's address on its first network (a restarted container may get another one)."""
        r = self.engine.get(f"/containers/{container_id}/json")
        r.raise_for_status()
        networks = r.json()["NetworkSettings"]["Networks"] or {}
        ip = next((n["IPAddress"] for n in networks.values() if n.get("IPAddress")), None)
        if ip is None:
            raise BadInput(f"container {container_id[:12]} has no network address", where=self.service)
        return f"http://{ip}:{SERVICE_PORT}"

    def urls(self) -> list[str]:
        with self._lock:
            return [r.url for r in self.replicas if r.killed_at is None]

    def kill(self, fraction: float, rng: random.Random) -> list[str]:
        from hms.chaos import victims

        with self._lock:
            alive = [r for r in self.replicas if r.killed_at is None]
            chosen = rng.sample(alive, victims(len(alive), fraction)) if alive else []
            for r in chosen:
                self.engine.post(f"/containers/{r.id}/kill", params={"signal": "SIGKILL"}).raise_for_status()
                r.killed_at = time.monotonic()
                self.kills += 1
        return [f"{r.name} (container {r.id[:12]})" for r in chosen]

    def _start(self, r: Replica) -> None:
        answer = self.engine.post(f"/containers/{r.id}/start")
        if answer.status_code not in (204, 304):  # 304: already running
            answer.raise_for_status()
        r.url, r.killed_at = self._url(r.id), None
        self.restarts += 1

    def _supervise(self) -> None:
        while not self._stopping.wait(0.05):
            with self._lock:
                for r in self.replicas:
                    if r.killed_at is not None and time.monotonic() - r.killed_at >= self.restart_delay:
                        with contextlib.suppress(httpx.HTTPError):  # the engine is busy: the next round tries again
                            self._start(r)

    def _ready(self, client: httpx.Client, url: str) -> bool:
        try:
            return client.get(url + "/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as c:
            while time.monotonic() < deadline:
                if self.whole_with(c):
                    return True
                time.sleep(0.1)
        return False

    def whole_with(self, client: httpx.Client) -> bool:
        with self._lock:
            if any(r.killed_at is not None for r in self.replicas):
                return False
            urls = [r.url for r in self.replicas]
        return all(self._ready(client, u) for u in urls)

    def whole(self) -> bool:
        with httpx.Client(timeout=0.5) as c:
            return self.whole_with(c)

    def stop(self) -> None:
        """Every container this experiment killed is started again; the engine connection is closed."""
        self._stopping.set()
        if self._supervisor.is_alive():
            self._supervisor.join(5)
        with self._lock:
            for r in self.replicas:
                if r.killed_at is not None:
                    try:
                        self._start(r)
                    except httpx.HTTPError as e:
                        print(f"[chaos] ❌ could not start {r.name} again: {e}", file=sys.stderr, flush=True)
        self.engine.close()

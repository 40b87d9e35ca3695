"""An emulated Kubernetes API for tests: kmock's emulator plus the API server's resourceVersion checks.

Shared by the KubernetesTarget unit tests and the end-to-end CLI tests of kubernetes mode. What
kmock 0.8 does and does not emulate is written up in tests/unit/test_kubernetes_target.py.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import kmock
from kubernetes import client

from hms.targets.kubernetes import KubernetesTarget

NS = "hms-staging"
CM = "hms-policy-wildfire-aid-2024"
CONFIGMAPS = kmock.resource("v1/configmaps")
DEPLOYMENTS = kmock.resource("apps/v1/deployments")


class VersionedEmulator(kmock.KubernetesEmulator):
    """kmock's emulator plus the API server's optimistic concurrency on resourceVersion (see the module doc).

    ``_handle`` is the hook ``KubernetesEmulator`` itself overrides to keep its store; the
    precondition is checked before the parent stores anything.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._versions = itertools.count(100)

    def next_version(self) -> str:
        return str(next(self._versions))

    async def _handle(self, request: kmock.Request) -> Any:
        writes = (kmock.action.CREATE, kmock.action.UPDATE)
        if request.resource is not None and request.action in writes and isinstance(request.data, dict):
            # In place: kmock matches its rules to a request by identity (a copy made with
            # attrs.evolve matches none and is answered 500), so request.data shows what was
            # stored; request.body keeps what the client sent.
            data = request.data
            meta = data.get("metadata")
            if meta is None:
                meta = data["metadata"] = {}
            key = (request.resource, request.namespace, request.name)
            if request.action == kmock.action.UPDATE and key in self.objects and not self.objects[key].deleted:
                stored = self.objects[key].get("metadata", {}).get("resourceVersion")
                wanted = meta.get("resourceVersion")
                if wanted is not None and wanted != stored:
                    raise kmock.KubernetesError(
                        status=409,
                        reason="Conflict",
                        message="the object has been modified; please apply your changes to the latest version",
                    )
            meta["resourceVersion"] = self.next_version()
            if request.namespace:
                meta.setdefault("namespace", request.namespace)
        return await super()._handle(request)


@dataclass
class Cluster:
    emulator: VersionedEmulator
    api: client.ApiClient

    def target(self, namespace: str = NS) -> KubernetesTarget:
        return KubernetesTarget(namespace, api_client=self.api)

    def configmap(self, name: str = CM, namespace: str = NS) -> dict[str, Any]:
        return self.emulator.objects[CONFIGMAPS, namespace, name].raw

    def deployment(self, namespace: str = NS) -> dict[str, Any]:
        return self.emulator.objects[DEPLOYMENTS, namespace, "hms-api"].raw

    def restarted_at(self, namespace: str = NS) -> str | None:
        template = self.deployment(namespace)["spec"]["template"]
        return (template["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/restartedAt")

    def count(self, method: str, resource: kmock.resource) -> int:
        return len(self.emulator[kmock.method(method), resource])

    def seed_deployment(self, namespace: str = NS) -> None:
        self.emulator.objects[DEPLOYMENTS, namespace, "hms-api"] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "hms-api", "namespace": namespace, "resourceVersion": "1"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app.kubernetes.io/name": "hms-api"}},
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": "hms-api"}},
                    "spec": {"containers": [{"name": "hms-api", "image": "hms:test"}]},
                },
            },
        }



@asynccontextmanager
async def running_cluster(namespaces: tuple[str, ...] = (NS,)) -> AsyncIterator[tuple[Cluster, str]]:
    """The emulator served over HTTP on 127.0.0.1 with an hms-api Deployment in each namespace; (cluster, URL)."""
    emulator = VersionedEmulator()
    async with emulator, kmock.Server(emulator) as server:
        url = str(server.url).rstrip("/")
        api = client.ApiClient(client.Configuration(host=url))
        c = Cluster(emulator, api)
        for ns in namespaces:
            c.seed_deployment(ns)
        try:
            yield c, url
        finally:
            api.close()

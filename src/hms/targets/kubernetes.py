"""Kubernetes backend: a ConfigMap per protocol, and a rollout restart of ``hms-api`` after each change.

In an environment's namespace, protocol ``wildfire-aid-2024`` is the ConfigMap
``hms-policy-wildfire-aid-2024``::

    metadata:
      labels: {app.kubernetes.io/part-of: hms, hms/protocol: wildfire-aid-2024}
      annotations: {hms/updated-by: <actor>}
    data:
      current: <bundle sha256>          current_version: "3"
      previous: <sha256 or "">          previous_version: "2" or ""
      activate_at: 2026-12-01T05:00:00Z      # ISO 8601, UTC

``current`` is the bundle in force from ``activate_at`` on (``previous`` until then).
The one way to change it is ``KubernetesTarget.reconcile``: the caller (hms.targets.sync)
computes the whole state from the registry — for a deploy, a schedule or a rollback
alike — and the target makes the ConfigMap hold exactly that, or deletes it::

    target = KubernetesTarget("hms-prod")
    want = PolicyState.build(digest, 3, previous_digest, 2, "2026-12-01T00:00:00-05:00")
    target.reconcile("wildfire-aid-2024", want, actor="alice")   # created / updated / unchanged
    target.reconcile("wildfire-aid-2024", None, actor="alice")   # removed: nothing is deployed

After every change the ``hms-api`` Deployment gets the same patch as ``kubectl rollout
restart`` (``spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]``),
so its pods restart and read the ConfigMap again.

Writes use optimistic concurrency: a change is a merge patch (or a delete) that carries
the ``resourceVersion`` it was computed from; the API server answers 409 if someone
else wrote in between, and we read again and compare again (also when a create loses
a race: 409 AlreadyExists). A change also sets the ``hms/restart-pending``
annotation, cleared once the restart went through: a reconcile that finds nothing to
change still restarts if an earlier restart failed, and otherwise touches nothing.

Everything is validated (protocol id, hashes, versions, times, actor) before the
API is called. Input we refuse is ``BadInput`` (exit 2, nothing changed); an API
server that fails or forbids is ``KubernetesApiError``.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from hms import clock
from hms.errors import BadInput, HmsError

log = logging.getLogger(__name__)

CONFIGMAP_PREFIX = "hms-policy-"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_PROTOCOL = "hms/protocol"
ANNOTATION_UPDATED_BY = "hms/updated-by"
ANNOTATION_RESTART_PENDING = "hms/restart-pending"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
DATA_KEYS = ("current", "current_version", "previous", "previous_version", "activate_at")
MAX_ATTEMPTS = 5
REQUEST_TIMEOUT = (5, 30)  # seconds: connect, read

# Left alone, the client sends a dict body as a strategic merge patch. We name the type:
# a JSON merge patch (RFC 7386: maps merge, null deletes a key) for our ConfigMaps, and a
# strategic merge patch for the Deployment, as `kubectl rollout restart` sends it.
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# Kubernetes' DNS-1123 subdomain (most object names, ConfigMaps included): ≤ 253 characters in all,
# dot-separated parts of [a-z0-9-] starting and ending alphanumeric; unlike DNS, no 63-character limit per part.
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_UTC_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")


class KubernetesApiError(HmsError):
    """The API server failed, forbade the call, or kept conflicting. Exit 1: the request itself was fine."""

    exit_code = 1

    def __init__(self, message: str, *, where: str | None = None, status: int | None = None) -> None:
        super().__init__(message, where=where)
        self.status = status


def _is_dns_subdomain(name: str) -> bool:
    return len(name) <= 253 and _DNS_SUBDOMAIN.fullmatch(name) is not None


def configmap_name(protocol_id: str) -> str:
    """``hms-policy-<id>`` for a protocol id that is a DNS label; ``BadInput`` otherwise.

    The id is also the value of the ``hms/protocol`` label, so it must be a DNS label
    (≤ 63 characters); the ConfigMap name (a DNS subdomain, ≤ 253) is then always valid.
    """
    if not isinstance(protocol_id, str) or not _DNS_LABEL.fullmatch(protocol_id):
        raise BadInput(
            f"protocol id {protocol_id!r} is not a DNS label (lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters)",
            where="protocol id",
        )
    name = CONFIGMAP_PREFIX + protocol_id
    if not _is_dns_subdomain(name):  # cannot happen for a DNS label; kept as the rule we rely on
        raise BadInput(f"ConfigMap name {name!r} is not a valid Kubernetes name", where="protocol id")
    return name


def _sha256(value: object, *, where: str) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value.lower()):
        raise BadInput(f"{value!r} is not a sha256 (64 hexadecimal digits)", where=where)
    return value.lower()


def _version(value: object, *, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInput(f"version must be a positive integer, got {value!r}", where=where)
    return value


def _utc_iso(value: datetime) -> str:
    text = value.astimezone(UTC).isoformat(timespec="microseconds" if value.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def _activate_at(value: object) -> str:
    """A timezone-aware datetime or ISO 8601 string with an offset → ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise BadInput(f"{value!r} is not an ISO 8601 time", where="activate_at") from None
    if not isinstance(value, datetime):
        raise BadInput(f"activate_at must be a datetime or an ISO 8601 string, got {value!r}", where="activate_at")
    if value.tzinfo is None or value.utcoffset() is None:
        raise BadInput(f"{value.isoformat()} has no timezone: give an offset or Z", where="activate_at")
    return _utc_iso(value)


def _actor(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 256 or not value.isprintable():
        raise BadInput(f"actor must be a printable name of at most 256 characters, got {value!r}", where="actor")
    return value


@dataclass(frozen=True)
class PolicyState:
    """The ConfigMap's ``data``, validated."""

    current: str
    current_version: int
    previous: str | None
    previous_version: int | None
    activate_at: str

    def to_data(self) -> dict[str, str]:
        return {
            "current": self.current,
            "current_version": str(self.current_version),
            "previous": self.previous or "",
            "previous_version": str(self.previous_version) if self.previous_version is not None else "",
            "activate_at": self.activate_at,
        }

    @classmethod
    def build(
        cls,
        current: str,
        current_version: int,
        previous: str | None,
        previous_version: int | None,
        activate_at: datetime | str,
    ) -> PolicyState:
        """A validated state from registry values (hashes, versions, an aware time)."""
        if (previous is None) != (previous_version is None):
            raise BadInput("previous and previous_version must be both set or both empty", where="previous")
        return cls(
            _sha256(current, where="current"),
            _version(current_version, where="current_version"),
            _sha256(previous, where="previous") if previous is not None else None,
            _version(previous_version, where="previous_version") if previous_version is not None else None,
            _activate_at(activate_at),
        )

    @classmethod
    def from_data(cls, data: dict[str, str] | None, *, where: str) -> PolicyState:
        """Refuse a ConfigMap edited into something we would deploy wrongly from (``BadInput``)."""
        data = data or {}
        missing = [k for k in DATA_KEYS if k not in data]
        if missing:
            raise BadInput(f"data lacks {', '.join(missing)}; fix or delete the ConfigMap", where=where)

        def version(key: str) -> int:
            text = data[key]
            if not text.isdigit() or int(text) < 1:
                raise BadInput(f"data.{key} {text!r} is not a positive integer", where=where)
            return int(text)

        current = _sha256(data["current"], where=f"{where} data.current")
        previous = _sha256(data["previous"], where=f"{where} data.previous") if data["previous"] else None
        previous_version = version("previous_version") if data["previous_version"] else None
        if (previous is None) != (previous_version is None):
            raise BadInput("data.previous and data.previous_version must be both set or both empty", where=where)
        if not _UTC_ISO.fullmatch(data["activate_at"]):
            raise BadInput(f"data.activate_at {data['activate_at']!r} is not an ISO 8601 UTC time", where=where)
        return cls(current, version("current_version"), previous, previous_version, data["activate_at"])


def _checked(desired: object) -> PolicyState:
    """``desired`` re-validated like a ConfigMap we read: a state built by hand, not by ``build``, is refused too."""
    if not isinstance(desired, PolicyState):
        raise BadInput(f"desired state must be a PolicyState or None, got {desired!r}", where="desired")
    return PolicyState.from_data(desired.to_data(), where="desired")


class _Stale(Exception):
    """The ConfigMap changed (409) or vanished (404) between our read and our write: read again."""


@dataclass(frozen=True)
class _Observed:
    state: PolicyState
    resource_version: str | None
    annotations: dict[str, str]


def default_api_client(in_cluster: bool | None = None) -> client.ApiClient:
    """A configured client: the pod's ServiceAccount, or ``$KUBECONFIG`` / ``~/.kube/config``.

    ``in_cluster`` is the pipeline config's ``execution.in_cluster``; None decides by
    ``KUBERNETES_SERVICE_HOST`` (set in every pod). Only reads configuration: no API call,
    so a missing configuration is refused (``BadInput``) before anything is changed.
    """
    if in_cluster is None:
        in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    try:
        if in_cluster:
            configuration = client.Configuration()
            kube_config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        return kube_config.new_client_from_config()
    except (kube_config.ConfigException, OSError) as e:
        raise BadInput(
            f"no Kubernetes configuration found ({e}); run in a pod with a ServiceAccount or set KUBECONFIG",
            where="kubernetes",
        ) from e


class KubernetesTarget:
    """One environment's namespace: reconcile and read protocol ConfigMaps, restart ``hms-api``.

    Example (the state comes from the registry: hms.targets.sync.desired)::

        target = KubernetesTarget("hms-prod")
        want = PolicyState.build(digest, 3, None, None, "2026-12-01T00:00:00-05:00")
        target.reconcile("wildfire-aid-2024", want, actor="alice")
        target.read("wildfire-aid-2024")   # the ConfigMap as a dict, or None

    :param namespace: the environment's namespace (a DNS label)
    :param api_client: a configured ``kubernetes.client.ApiClient``; default: in-cluster or kubeconfig
    :param deployment: the Deployment restarted after each change
    """

    def __init__(self, namespace: str, api_client: client.ApiClient | None = None, deployment: str = "hms-api") -> None:
        if not isinstance(namespace, str) or not _DNS_LABEL.fullmatch(namespace):
            raise BadInput(f"namespace {namespace!r} is not a DNS label", where="namespace")
        if not isinstance(deployment, str) or not _is_dns_subdomain(deployment):
            raise BadInput(f"deployment {deployment!r} is not a valid Kubernetes name", where="deployment")
        self.namespace = namespace
        self.deployment = deployment
        self._api = api_client if api_client is not None else default_api_client()
        self._core = client.CoreV1Api(self._api)
        self._apps = client.AppsV1Api(self._api)

    # -- public API ---------------------------------------------------------------------------

    def read(self, protocol_id: str) -> dict[str, Any] | None:
        """The protocol's ConfigMap as a dict (see ``reconcile``'s result), or None if there is none."""
        name = configmap_name(protocol_id)
        observed = self._get(name)
        if observed is None:
            return None
        pending = bool(observed.annotations.get(ANNOTATION_RESTART_PENDING))
        return self._result(
            protocol_id, name, observed.state, observed.annotations, action="read", restart_pending=pending
        )

    def reconcile(self, protocol_id: str, desired: PolicyState | None, *, actor: str) -> dict[str, Any]:
        """Make the ConfigMap hold exactly ``desired`` (None: no ConfigMap), restarting hms-api after a change.

        This is what the pipeline calls (hms.targets.sync): the state comes from the registry,
        so calling it again with the same state is harmless — ``unchanged`` and no restart,
        or, if an earlier restart did not go through, that restart finished. ``action`` is
        created / updated / removed / unchanged. ``desired`` is checked again before any API
        call, so a state built by hand rather than by ``PolicyState.build`` cannot slip through.
        """
        name = configmap_name(protocol_id)
        actor = _actor(actor)
        if desired is not None:
            desired = _checked(desired)
        for _attempt in range(MAX_ATTEMPTS):
            observed = self._get(name)
            if desired is None:
                if observed is None:
                    return self._absent(protocol_id, name, action="unchanged")
                try:
                    self._delete(name, observed.resource_version)
                except _Stale:
                    continue
                restarted = self._restart_after(name, "removed the ConfigMap")
                return {**self._absent(protocol_id, name, action="removed"), "changed": True, "restarted": restarted}
            if observed is None:
                try:
                    rv = self._create(name, protocol_id, desired, actor)
                except _Stale:
                    continue
                return self._after_change(protocol_id, name, desired, actor, "created", resource_version=rv)
            if observed.state == desired:
                restarted = False
                if observed.annotations.get(ANNOTATION_RESTART_PENDING):
                    log.warning("%s/%s: finishing a restart that did not go through", self.namespace, name)
                    restarted = self._restart_and_clear(name, observed.resource_version)
                return self._result(
                    protocol_id, name, desired, observed.annotations, action="unchanged", restarted=restarted
                )
            try:
                rv = self._patch(name, protocol_id, desired, actor, observed.resource_version)
            except _Stale:
                continue
            return self._after_change(protocol_id, name, desired, actor, "updated", resource_version=rv)
        raise KubernetesApiError(
            f"{self.namespace}/{name} kept changing under us ({MAX_ATTEMPTS} conflicting writes); try again",
            where="kubernetes",
            status=409,
        )

    def restart_deployment(self) -> bool:
        """``kubectl rollout restart`` for the Deployment: False if it does not exist here."""
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: _utc_iso(_now())}}}}}
        try:
            response = self._apps.patch_namespaced_deployment(
                self.deployment,
                self.namespace,
                body,
                _content_type=STRATEGIC_MERGE_PATCH,
                _request_timeout=REQUEST_TIMEOUT,
                _preload_content=False,  # the whole Deployment comes back; we only need the status
            )
            response.drain_conn()
            response.release_conn()
        except ApiException as e:
            if e.status == 404:
                log.warning("%s/%s: no such Deployment, nothing to restart", self.namespace, self.deployment)
                return False
            raise self._api_error(e, f"deployment {self.deployment}") from e
        except Urllib3HTTPError as e:
            raise self._unreachable(e) from e
        return True

    # -- API calls ----------------------------------------------------------------------------

    def _get(self, name: str) -> _Observed | None:
        try:
            cm = self._core.read_namespaced_config_map(name, self.namespace, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status == 404:
                return None
            raise self._api_error(e, f"configmap {name}") from e
        except Urllib3HTTPError as e:
            raise self._unreachable(e) from e
        where = f"configmap {self.namespace}/{name}"
        meta = cm.metadata or client.V1ObjectMeta()
        state = PolicyState.from_data(cm.data, where=where)
        return _Observed(state, meta.resource_version, dict(meta.annotations or {}))

    def _create(self, name: str, protocol_id: str, state: PolicyState, actor: str) -> str | None:
        """Create the ConfigMap; its resourceVersion. ``_Stale`` if it already exists (409)."""
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": self._labels(protocol_id),
                "annotations": {ANNOTATION_UPDATED_BY: actor, ANNOTATION_RESTART_PENDING: "true"},
            },
            "data": state.to_data(),
        }
        try:
            cm = self._core.create_namespaced_config_map(self.namespace, body, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status == 409:
                log.info("%s/%s: created concurrently, reading it again", self.namespace, name)
                raise _Stale from e
            raise self._api_error(e, f"configmap {name}") from e
        except Urllib3HTTPError as e:
            raise self._unreachable(e) from e
        return cm.metadata.resource_version if cm.metadata else None

    def _patch(
        self, name: str, protocol_id: str, state: PolicyState, actor: str, resource_version: str | None
    ) -> str | None:
        """Write ``state`` if the ConfigMap is still at ``resource_version``; the new resourceVersion.

        ``_Stale`` on a conflict (409) or if it was deleted meanwhile (404): the caller reads again.
        """
        metadata: dict[str, Any] = {
            "labels": self._labels(protocol_id),
            "annotations": {ANNOTATION_UPDATED_BY: actor, ANNOTATION_RESTART_PENDING: "true"},
        }
        if resource_version:
            metadata["resourceVersion"] = resource_version  # the precondition: 409 if it moved on
        try:
            cm = self._core.patch_namespaced_config_map(
                name,
                self.namespace,
                {"metadata": metadata, "data": state.to_data()},
                _content_type=MERGE_PATCH,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as e:
            if e.status in (404, 409):
                log.info("%s/%s: changed concurrently (HTTP %s), reading it again", self.namespace, name, e.status)
                raise _Stale from e
            raise self._api_error(e, f"configmap {name}") from e
        except Urllib3HTTPError as e:
            raise self._unreachable(e) from e
        return cm.metadata.resource_version if cm.metadata else None

    def _delete(self, name: str, resource_version: str | None) -> None:
        """Delete the ConfigMap if it is still at ``resource_version``; ``_Stale`` on a conflict (409)."""
        preconditions = client.V1Preconditions(resource_version=resource_version) if resource_version else None
        try:
            self._core.delete_namespaced_config_map(
                name,
                self.namespace,
                body=client.V1DeleteOptions(preconditions=preconditions),
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as e:
            if e.status == 404:
                return  # already gone: what we wanted
            if e.status == 409:
                raise _Stale from e
            raise self._api_error(e, f"configmap {name}") from e
        except Urllib3HTTPError as e:
            raise self._unreachable(e) from e

    def _restart_after(self, name: str, what: str) -> bool:
        try:
            return self.restart_deployment()
        except KubernetesApiError as e:
            raise KubernetesApiError(
                f"{self.namespace}/{name}: {what}, but the restart of {self.deployment} failed: {e.message}; "
                f"restart it by hand (kubectl -n {self.namespace} rollout restart deployment/{self.deployment})",
                where=e.where,
                status=e.status,
            ) from e

    def _absent(self, protocol_id: str, name: str, *, action: str) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "configmap": name,
            "protocol_id": protocol_id,
            "action": action,
            "changed": False,
            "restarted": False,
            "current": None,
            "current_version": None,
            "previous": None,
            "previous_version": None,
            "activate_at": None,
            "updated_by": None,
            "restart_pending": False,
        }

    def _restart_and_clear(self, name: str, resource_version: str | None) -> bool:
        """Restart the Deployment, then drop the restart-pending mark if nobody wrote since ours."""
        restarted = self.restart_deployment()
        metadata: dict[str, Any] = {"annotations": {ANNOTATION_RESTART_PENDING: None}}
        if resource_version:
            metadata["resourceVersion"] = resource_version
        try:
            self._core.patch_namespaced_config_map(
                name,
                self.namespace,
                {"metadata": metadata},
                _content_type=MERGE_PATCH,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as e:
            # 409: a newer change carries its own mark and its writer restarts after it; 404: gone.
            if e.status not in (404, 409):
                raise self._api_error(e, f"configmap {name}") from e
        except Urllib3HTTPError as e:
            raise self._unreachable(e) from e
        return restarted

    def _after_change(
        self, protocol_id: str, name: str, state: PolicyState, actor: str, action: str, *, resource_version: str | None
    ) -> dict[str, Any]:
        try:
            restarted = self._restart_and_clear(name, resource_version)
        except KubernetesApiError as e:
            raise KubernetesApiError(
                f"{self.namespace}/{name} now holds {state.current[:12]} (v{state.current_version}) but the restart "
                f"of {self.deployment} failed: {e.message}; reconcile the same state again to finish the restart",
                where=e.where,
                status=e.status,
            ) from e
        annotations = {ANNOTATION_UPDATED_BY: actor}
        return self._result(protocol_id, name, state, annotations, action=action, changed=True, restarted=restarted)

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _labels(protocol_id: str) -> dict[str, str]:
        return {LABEL_PART_OF: "hms", LABEL_PROTOCOL: protocol_id}

    def _result(
        self,
        protocol_id: str,
        name: str,
        state: PolicyState,
        annotations: dict[str, str],
        *,
        action: str,
        changed: bool = False,
        restarted: bool = False,
        restart_pending: bool = False,
    ) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "configmap": name,
            "protocol_id": protocol_id,
            "action": action,
            "changed": changed,
            "restarted": restarted,
            "current": state.current,
            "current_version": state.current_version,
            "previous": state.previous,
            "previous_version": state.previous_version,
            "activate_at": state.activate_at,
            "updated_by": annotations.get(ANNOTATION_UPDATED_BY),
            "restart_pending": restart_pending,
        }

    def _api_error(self, e: ApiException, what: str) -> KubernetesApiError:
        hint = {401: "credentials rejected", 403: "forbidden: check the Role bound to this ServiceAccount"}
        reason = hint.get(e.status, e.reason or "error")
        return KubernetesApiError(
            f"{what} in namespace {self.namespace}: HTTP {e.status} {reason}", where="kubernetes", status=e.status
        )

    def _unreachable(self, e: Exception) -> KubernetesApiError:
        return KubernetesApiError(f"Kubernetes API unreachable: {e}", where="kubernetes")


def _now() -> datetime:
    return clock.now()

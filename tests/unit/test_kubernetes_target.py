"""KubernetesTarget against an emulated Kubernetes API served over HTTP on 127.0.0.1.

The emulator is kmock's ``KubernetesEmulator`` (kmock 0.8), reached by the official
``kubernetes`` client through a real ``Configuration(host=...)`` — the same calls,
URLs, bodies and content types as against a cluster. The client is synchronous, so
the target runs in a worker thread while the emulator serves on the event loop.

What kmock 0.8 does and does not emulate, checked in its source and here:
- create (POST), read (GET), merge of a PATCH, 404 for a missing object and 409 for
  creating an existing one: yes. With kubernetes 36.0.3 a ConfigMap created by the
  client reads back fine (the research note's "strict fetch answers 500" did not
  show up for any call the target makes; ``test_emulator_round_trips_…`` keeps it so).
- PUT (replace) is not routed (404 "Endpoint Not Found"); the target writes with
  merge patches, which a real API server treats the same way.
- resourceVersion: kmock stores objects as given and merges every PATCH whatever
  resourceVersion it carries, so it never answers 409 for a stale write. A plain
  "answer 409 once" kmock rule would not help: kmock applies a write to its store
  before user rules answer, so the 409 would report a conflict for a write that was
  in fact stored, and the retry would wrongly find nothing to do. ``VersionedEmulator``
  (tests/kmock_helpers.py) adds what the API server does — a new resourceVersion on every write, and
  409 Conflict (write not applied) for a patch carrying a stale one — so the
  conflict tests exercise the retry against a genuine precondition failure.
- Deployments are seeded straight into the emulator's store (the target only patches them).
- DELETE preconditions are not checked (neither by kmock nor by ``VersionedEmulator``): the
  tests see that a delete carries the resourceVersion it read, not a 409 answered to it.

``reconcile`` is the one way the target changes a ConfigMap: it writes exactly the state it is
given (or deletes the ConfigMap for None), once. What a deploy or a rollback *means* — which
bundle becomes ``previous``, a rollback in force at once, a first deployment withdrawn — is
computed from the registry by hms.targets.sync and proved through the real CLI in
tests/integration/test_kubernetes_mode_cli.py.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import kmock
import pytest
import pytest_asyncio
from kubernetes import client

from hms.errors import BadInput
from hms.targets import kubernetes as k8s_target
from hms.targets.kubernetes import KubernetesApiError, KubernetesTarget, PolicyState, configmap_name
from tests.kmock_helpers import CM, CONFIGMAPS, DEPLOYMENTS, NS, Cluster, running_cluster

PROTOCOL = "wildfire-aid-2024"
SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64
AT = "2026-12-01T00:00:00-05:00"
AT_UTC = "2026-12-01T05:00:00Z"



@pytest_asyncio.fixture
async def cluster() -> AsyncIterator[Cluster]:
    async with running_cluster() as (c, _url):
        yield c


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """The client is synchronous: run it off the loop that serves the emulator."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def state(
    current: str, version: int, previous: str | None = None, previous_version: int | None = None, at: Any = AT
) -> PolicyState:
    """A state as hms.targets.sync.desired builds it from registry rows."""
    return PolicyState.build(current, version, previous, previous_version, at)


async def reconcile(
    c: Cluster, desired: PolicyState | None, *, actor: str = "alice", namespace: str = NS
) -> dict[str, Any]:
    return await call(c.target(namespace).reconcile, PROTOCOL, desired, actor=actor)


def configmap_writes(c: Cluster) -> int:
    return sum(c.count(m, CONFIGMAPS) for m in ("POST", "PATCH", "DELETE"))


def data_patches(c: Cluster, since: int = 0) -> list[dict[str, Any]]:
    """The ConfigMap patches that carried data (not the restart-pending clean-ups), as the client sent them."""
    sent = [json.loads(p.body) for p in c.emulator[kmock.method.PATCH, CONFIGMAPS][since:]]
    return [body for body in sent if "data" in body]


# -- create / update / idempotence ------------------------------------------------------------


@pytest.mark.asyncio
async def test_first_reconcile_creates_the_configmap_and_restarts_hms_api(cluster: Cluster) -> None:
    result = await reconcile(cluster, state(SHA_A, 1))

    assert result["action"] == "created"
    assert result["changed"] is True and result["restarted"] is True
    cm = cluster.configmap()
    assert cm["metadata"]["labels"] == {"app.kubernetes.io/part-of": "hms", "hms/protocol": PROTOCOL}
    assert cm["metadata"]["annotations"]["hms/updated-by"] == "alice"
    assert "hms/restart-pending" not in cm["metadata"]["annotations"]  # cleared once the restart went through
    assert cm["data"] == {
        "current": SHA_A,
        "current_version": "1",
        "previous": "",
        "previous_version": "",
        "activate_at": AT_UTC,
    }
    assert cluster.restarted_at() is not None
    assert cluster.count("POST", CONFIGMAPS) == 1
    assert cluster.count("PATCH", DEPLOYMENTS) == 1


@pytest.mark.asyncio
async def test_a_new_state_is_merge_patched_in_place_and_restarts_hms_api(cluster: Cluster) -> None:
    await reconcile(cluster, state(SHA_A, 1))
    first_restart = cluster.restarted_at()

    result = await reconcile(cluster, state(SHA_B, 2, SHA_A, 1, at="2027-01-01T00:00:00+00:00"), actor="bob")

    assert result["action"] == "updated" and result["changed"] is True and result["restarted"] is True
    assert cluster.configmap()["data"] == {
        "current": SHA_B,
        "current_version": "2",
        "previous": SHA_A,
        "previous_version": "1",
        "activate_at": "2027-01-01T00:00:00Z",
    }
    assert cluster.configmap()["metadata"]["annotations"]["hms/updated-by"] == "bob"
    assert cluster.count("POST", CONFIGMAPS) == 1  # updated in place, not re-created
    patch = cluster.emulator[kmock.method.PATCH, CONFIGMAPS][-2]  # the data patch; the last clears restart-pending
    assert patch.headers["Content-Type"] == "application/merge-patch+json"
    assert cluster.count("PATCH", DEPLOYMENTS) == 2
    assert cluster.restarted_at() != first_restart  # a new value, or the Deployment would not roll


@pytest.mark.asyncio
async def test_reconciling_the_state_already_held_changes_nothing_and_does_not_restart(cluster: Cluster) -> None:
    await reconcile(cluster, state(SHA_A, 1))
    await reconcile(cluster, state(SHA_B, 2, SHA_A, 1))
    before = copy.deepcopy(cluster.configmap())
    writes_before = len(cluster.emulator[kmock.method.PATCH]) + len(cluster.emulator[kmock.method.POST])
    restarted_at = cluster.restarted_at()

    # The same state, its hashes spelled in capitals and not passed through build(): reconcile normalizes it.
    again = await reconcile(cluster, PolicyState(SHA_B.upper(), 2, SHA_A.upper(), 1, AT_UTC), actor="carol")

    assert again["action"] == "unchanged"
    assert again["changed"] is False and again["restarted"] is False
    assert cluster.configmap() == before  # not even the updated-by annotation moved
    assert len(cluster.emulator[kmock.method.PATCH]) + len(cluster.emulator[kmock.method.POST]) == writes_before
    assert cluster.count("PATCH", DEPLOYMENTS) == 2  # no restart patch the second time
    assert cluster.restarted_at() == restarted_at


@pytest.mark.asyncio
async def test_moving_only_the_activation_time_rewrites_it_and_restarts_without_shifting_previous(
    cluster: Cluster,
) -> None:
    await reconcile(cluster, state(SHA_B, 2, SHA_A, 1))

    result = await reconcile(cluster, state(SHA_B, 2, SHA_A, 1, at=datetime(2026, 12, 2, 5, 30, tzinfo=UTC)))

    assert result["action"] == "updated" and result["restarted"] is True
    data = cluster.configmap()["data"]
    assert (data["current"], data["previous"], data["activate_at"]) == (SHA_B, SHA_A, "2026-12-02T05:30:00Z")
    assert cluster.count("PATCH", DEPLOYMENTS) == 2


@pytest.mark.asyncio
async def test_reconcile_writes_previous_as_given_not_as_the_old_current(cluster: Cluster) -> None:
    await reconcile(cluster, state(SHA_B, 2, SHA_A, 1))

    result = await reconcile(cluster, state(SHA_A, 1, SHA_B, 2))  # a rollback, as the registry records it

    assert result["action"] == "updated" and result["restarted"] is True
    assert cluster.configmap()["data"] == {
        "current": SHA_A, "current_version": "1", "previous": SHA_B, "previous_version": "2", "activate_at": AT_UTC,
    }


@pytest.mark.asyncio
async def test_reconcile_to_nothing_deletes_the_configmap_once_and_restarts(cluster: Cluster) -> None:
    await reconcile(cluster, state(SHA_A, 1))
    restarts = cluster.count("PATCH", DEPLOYMENTS)
    version_read = cluster.configmap()["metadata"]["resourceVersion"]

    removed = await reconcile(cluster, None)
    again = await reconcile(cluster, None)

    assert removed["action"] == "removed" and removed["changed"] is True and removed["restarted"] is True
    assert (CONFIGMAPS, NS, CM) not in cluster.emulator.objects or cluster.emulator.objects[CONFIGMAPS, NS, CM].deleted
    assert await call(cluster.target().read, PROTOCOL) is None
    deletes = cluster.emulator[kmock.method.DELETE, CONFIGMAPS]
    assert len(deletes) == 1  # the second call found nothing to delete
    assert json.loads(deletes[0].body)["preconditions"] == {"resourceVersion": version_read}
    assert again["action"] == "unchanged" and again["changed"] is False and again["restarted"] is False
    assert cluster.count("PATCH", DEPLOYMENTS) == restarts + 1


# -- concurrency -------------------------------------------------------------------------------


def competing_writer(c: Cluster, data: dict[str, str]) -> Any:
    """A rule for one GET: answer the stored (soon stale) object, then let 'someone else' write."""

    def answer(request: kmock.Request) -> dict[str, Any]:
        obj = c.emulator.objects[CONFIGMAPS, NS, CM]
        stale = copy.deepcopy(obj.raw)
        obj.patch({"metadata": {"resourceVersion": c.emulator.next_version()}, "data": data})
        return stale

    return answer


def next_read_races(c: Cluster, data: dict[str, str], *, every: bool = False) -> None:
    """The next ConfigMap read (every one after it too, with ``every``) is followed by someone else's write."""
    fetches = len(c.emulator[kmock.action.FETCH, CONFIGMAPS])
    end = None if every else fetches + 1
    c.emulator[kmock.action.FETCH, CONFIGMAPS][fetches:end] << competing_writer(c, data)


@pytest.mark.asyncio
async def test_a_write_between_our_read_and_our_patch_gets_409_and_we_write_the_desired_state_on_top(
    cluster: Cluster,
) -> None:
    await reconcile(cluster, state(SHA_A, 1))
    stale_version = cluster.configmap()["metadata"]["resourceVersion"]
    next_read_races(cluster, {"current": SHA_B, "current_version": "2", "previous": SHA_A, "previous_version": "1"})
    patches = cluster.count("PATCH", CONFIGMAPS)

    result = await reconcile(cluster, state(SHA_C, 3, SHA_A, 1))

    # Our first patch carried the resourceVersion we read; the emulator refused it (409) and stored
    # nothing; we read again, saw B, and patched again with the newer resourceVersion: the registry's
    # state (C over A) is what the ConfigMap holds, the competing B is not kept as previous.
    assert result["action"] == "updated" and result["restarted"] is True
    data = cluster.configmap()["data"]
    assert (data["current"], data["previous"], data["previous_version"]) == (SHA_C, SHA_A, "1")
    sent = data_patches(cluster, since=patches)
    assert len(sent) == 2
    first, second = (body["metadata"]["resourceVersion"] for body in sent)
    assert first == stale_version and second != stale_version
    assert any(isinstance(e, kmock.KubernetesError) and e.status == 409 for e in cluster.emulator.errors)


@pytest.mark.asyncio
async def test_losing_the_create_race_reads_the_winner_and_updates_it(cluster: Cluster) -> None:
    def someone_else_created_it_after_our_read(request: kmock.Request) -> None:
        cluster.emulator.objects[CONFIGMAPS, NS, CM] = {
            "metadata": {"name": CM, "namespace": NS, "resourceVersion": cluster.emulator.next_version()},
            "data": {
                "current": SHA_A,
                "current_version": "1",
                "previous": "",
                "previous_version": "",
                "activate_at": AT_UTC,
            },
        }
        raise kmock.KubernetesObjectNotFoundError()  # what our GET saw, a moment before

    cluster.emulator[kmock.action.FETCH, CONFIGMAPS][:1] << someone_else_created_it_after_our_read

    result = await reconcile(cluster, state(SHA_B, 2, SHA_A, 1))

    assert cluster.count("POST", CONFIGMAPS) == 1  # ours, answered 409 AlreadyExists by the emulator itself
    assert any(e.status == 409 for e in cluster.emulator.errors if isinstance(e, kmock.KubernetesError))
    assert result["action"] == "updated"
    assert (result["current"], result["previous"]) == (SHA_B, SHA_A)
    assert cluster.configmap()["data"]["current"] == SHA_B


@pytest.mark.asyncio
async def test_a_concurrent_writer_that_already_wrote_the_desired_state_leaves_nothing_to_do(
    cluster: Cluster,
) -> None:
    await reconcile(cluster, state(SHA_B, 2, SHA_A, 1))
    restarts = cluster.count("PATCH", DEPLOYMENTS)
    # Another process rolled back to A first (the same registry state we are about to write).
    next_read_races(cluster, {"current": SHA_A, "current_version": "1", "previous": SHA_B, "previous_version": "2"})
    patches = cluster.count("PATCH", CONFIGMAPS)

    result = await reconcile(cluster, state(SHA_A, 1, SHA_B, 2))

    # Our patch got 409; the re-read already holds what we want: written once, not twice, and the
    # restart is the other writer's (it set no restart-pending mark for us to finish).
    assert result["action"] == "unchanged" and result["changed"] is False and result["restarted"] is False
    assert len(data_patches(cluster, since=patches)) == 1  # only the refused one
    data = cluster.configmap()["data"]
    assert (data["current"], data["previous"]) == (SHA_A, SHA_B)
    assert cluster.count("PATCH", DEPLOYMENTS) == restarts


@pytest.mark.asyncio
async def test_conflicts_that_never_stop_end_in_an_api_error_after_bounded_attempts(cluster: Cluster) -> None:
    await reconcile(cluster, state(SHA_A, 1))
    fetches = len(cluster.emulator[kmock.action.FETCH, CONFIGMAPS])
    next_read_races(
        cluster, {"current": SHA_B, "current_version": "2", "previous": SHA_A, "previous_version": "1"}, every=True
    )
    restarts = cluster.count("PATCH", DEPLOYMENTS)

    with pytest.raises(KubernetesApiError, match="kept changing") as caught:
        await reconcile(cluster, state(SHA_C, 3, SHA_A, 1))

    assert caught.value.status == 409 and caught.value.exit_code == 1
    assert len(cluster.emulator[kmock.action.FETCH, CONFIGMAPS]) - fetches == k8s_target.MAX_ATTEMPTS
    assert cluster.configmap()["data"]["current"] == SHA_B  # ours never landed
    assert cluster.count("PATCH", DEPLOYMENTS) == restarts


# -- restart -----------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [403, 500])
async def test_a_failed_restart_is_reported_and_reconciling_the_same_state_again_finishes_it(
    cluster: Cluster, status: int
) -> None:
    cluster.emulator[kmock.method.PATCH, DEPLOYMENTS][:1] << status

    with pytest.raises(KubernetesApiError, match=f"now holds aaaaaaaaaaaa .*restart of hms-api failed.*{status}"):
        await reconcile(cluster, state(SHA_A, 1))

    read = await call(cluster.target().read, PROTOCOL)
    assert read["current"] == SHA_A and read["restart_pending"] is True

    retry = await reconcile(cluster, state(SHA_A, 1))

    assert retry["action"] == "unchanged" and retry["changed"] is False and retry["restarted"] is True
    assert "hms/restart-pending" not in cluster.configmap()["metadata"]["annotations"]
    assert cluster.count("PATCH", DEPLOYMENTS) == 2

    third = await reconcile(cluster, state(SHA_A, 1))  # and now truly nothing to do
    assert third["restarted"] is False and cluster.count("PATCH", DEPLOYMENTS) == 2


@pytest.mark.asyncio
async def test_a_failed_restart_after_a_delete_says_how_to_restart_by_hand(cluster: Cluster) -> None:
    await reconcile(cluster, state(SHA_A, 1))
    restarts = cluster.count("PATCH", DEPLOYMENTS)
    cluster.emulator[kmock.method.PATCH, DEPLOYMENTS][restarts : restarts + 1] << 403  # the next restart

    with pytest.raises(KubernetesApiError, match="removed the ConfigMap, but the restart of hms-api failed") as caught:
        await reconcile(cluster, None)

    assert "kubectl -n hms-staging rollout restart deployment/hms-api" in caught.value.message
    assert await call(cluster.target().read, PROTOCOL) is None


@pytest.mark.asyncio
async def test_a_namespace_without_the_deployment_gets_the_configmap_and_reports_no_restart(
    cluster: Cluster,
) -> None:
    result = await reconcile(cluster, state(SHA_A, 1), namespace="hms-preprod")

    assert result["changed"] is True and result["restarted"] is False
    assert cluster.configmap(namespace="hms-preprod")["data"]["current"] == SHA_A


@pytest.mark.asyncio
async def test_the_restart_is_the_kubectl_rollout_restart_patch(cluster: Cluster) -> None:
    await reconcile(cluster, state(SHA_A, 1))

    patch = cluster.emulator[kmock.method.PATCH, DEPLOYMENTS][-1]
    assert patch.headers["Content-Type"] == "application/strategic-merge-patch+json"
    sent = json.loads(patch.body)
    assert set(sent) == {"spec"}
    restarted_at = sent["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
    assert datetime.fromisoformat(restarted_at).tzinfo is not None
    assert cluster.deployment()["spec"]["replicas"] == 2  # nothing else in the Deployment touched


# -- read and validation -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_read_returns_none_for_an_unknown_protocol_and_the_state_for_a_known_one(cluster: Cluster) -> None:
    assert await call(cluster.target().read, PROTOCOL) is None

    await reconcile(cluster, state(SHA_B, 2, SHA_A, 1))
    held = await call(cluster.target().read, PROTOCOL)

    assert held["current"] == SHA_B and held["current_version"] == 2
    assert held["previous"] == SHA_A and held["previous_version"] == 1
    assert held["activate_at"] == AT_UTC and held["updated_by"] == "alice"
    assert held["restart_pending"] is False and held["action"] == "read"


@pytest.mark.asyncio
async def test_emulator_round_trips_configmaps_created_by_the_official_client(cluster: Cluster) -> None:
    core = client.CoreV1Api(cluster.api)
    await call(core.create_namespaced_config_map, NS, {"metadata": {"name": "probe"}, "data": {"k": "v"}})

    read = await call(core.read_namespaced_config_map, "probe", NS)

    assert read.data == {"k": "v"}


@pytest.mark.asyncio
async def test_a_hand_edited_configmap_is_refused_not_built_upon_nor_deleted(cluster: Cluster) -> None:
    cluster.emulator.objects[CONFIGMAPS, NS, CM] = {
        "metadata": {"name": CM, "namespace": NS, "resourceVersion": "7"},
        "data": {
            "current": "not-a-hash",
            "current_version": "1",
            "previous": "",
            "previous_version": "",
            "activate_at": AT_UTC,
        },
    }

    with pytest.raises(BadInput, match="data.current"):
        await reconcile(cluster, state(SHA_B, 2))
    with pytest.raises(BadInput, match="data.current"):
        await reconcile(cluster, None)
    assert configmap_writes(cluster) == 0 and cluster.count("PATCH", DEPLOYMENTS) == 0


BAD_STATE_FIELDS = [
    pytest.param({"current": "abc"}, "current", id="short-hash"),
    pytest.param({"current": "g" * 64}, "current", id="non-hex-hash"),
    pytest.param({"current": "a" * 65}, "current", id="long-hash"),
    pytest.param({"current": "sha256:" + "a" * 64}, "current", id="prefixed-hash"),
    pytest.param({"current_version": 0}, "current_version", id="version-0"),
    pytest.param({"current_version": True}, "current_version", id="version-bool"),
    pytest.param({"current_version": "3"}, "current_version", id="version-string"),
    pytest.param({"previous": SHA_B}, "previous", id="previous-without-version"),
    pytest.param({"previous": "b" * 63, "previous_version": 1}, "previous", id="short-previous-hash"),
    pytest.param({"activate_at": datetime(2026, 12, 1)}, "activate_at", id="naive-datetime"),
    pytest.param({"activate_at": "2026-12-01T00:00:00"}, "activate_at", id="naive-string"),
    pytest.param({"activate_at": "tomorrow"}, "activate_at", id="not-a-time"),
]


@pytest.mark.parametrize(("override", "where"), BAD_STATE_FIELDS)
def test_a_state_from_the_registry_is_validated_when_built(override: dict[str, Any], where: str) -> None:
    fields: dict[str, Any] = {
        "current": SHA_A, "current_version": 1, "previous": None, "previous_version": None, "activate_at": AT,
    }
    fields.update(override)

    with pytest.raises(BadInput) as caught:
        PolicyState.build(**fields)

    assert caught.value.where == where and caught.value.exit_code == 2


BAD_RECONCILE_ARGUMENTS = [
    pytest.param({"protocol_id": "Wildfire"}, "protocol id", id="uppercase-id"),
    pytest.param({"protocol_id": "wild_fire"}, "protocol id", id="underscore-id"),
    pytest.param({"protocol_id": "-wildfire"}, "protocol id", id="leading-hyphen-id"),
    pytest.param({"protocol_id": "x" * 64}, "protocol id", id="64-char-id"),
    pytest.param({"protocol_id": "../kube-system"}, "protocol id", id="path-traversal-id"),
    pytest.param({"protocol_id": "wildfire/../x"}, "protocol id", id="slash-id"),
    pytest.param({"actor": ""}, "actor", id="empty-actor"),
    pytest.param({"actor": "a\nb"}, "actor", id="control-char-actor"),
    pytest.param({"actor": "x" * 257}, "actor", id="257-char-actor"),
    # A state not made by PolicyState.build (or not a state at all) is checked like a ConfigMap we read.
    pytest.param({"desired": PolicyState("abc", 1, None, None, AT_UTC)}, "desired data.current", id="hand-built-hash"),
    pytest.param({"desired": PolicyState(SHA_A, 0, None, None, AT_UTC)}, "desired", id="hand-built-version-0"),
    pytest.param({"desired": PolicyState(SHA_A, 1, SHA_B, None, AT_UTC)}, "desired", id="hand-built-half-previous"),
    pytest.param({"desired": PolicyState(SHA_A, 1, None, None, AT)}, "desired", id="hand-built-offset-time"),
    pytest.param({"desired": {"current": SHA_A}}, "desired", id="not-a-state"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("override", "where"), BAD_RECONCILE_ARGUMENTS)
async def test_bad_arguments_are_refused_before_any_api_call(
    cluster: Cluster, override: dict[str, Any], where: str
) -> None:
    kwargs: dict[str, Any] = {"protocol_id": PROTOCOL, "desired": state(SHA_A, 1), "actor": "a"}
    kwargs.update(override)

    with pytest.raises(BadInput) as caught:
        await call(cluster.target().reconcile, kwargs["protocol_id"], kwargs["desired"], actor=kwargs["actor"])

    assert caught.value.where == where and caught.value.exit_code == 2
    assert len(cluster.emulator) == 0  # no request reached the API


def test_a_63_character_protocol_id_gives_a_valid_configmap_name() -> None:
    name = configmap_name("p" * 63)
    assert name == "hms-policy-" + "p" * 63 and len(name) == 74  # ConfigMap names are DNS subdomains (≤ 253)


def test_activation_times_are_stored_in_utc_whatever_offset_they_came_with() -> None:
    tokyo = timezone(timedelta(hours=9))
    assert k8s_target._activate_at(datetime(2026, 12, 1, 14, 0, tzinfo=tokyo)) == AT_UTC
    assert k8s_target._activate_at("2026-12-01T05:00:00.250000+00:00") == "2026-12-01T05:00:00.250000Z"


@pytest.mark.parametrize("namespace", ["HMS", "hms_prod", "", "x" * 64])
def test_a_namespace_that_is_not_a_dns_label_is_refused(namespace: str) -> None:
    with pytest.raises(BadInput, match="namespace"):
        KubernetesTarget(namespace, api_client=client.ApiClient(client.Configuration(host="http://127.0.0.1:9")))


def test_without_cluster_or_kubeconfig_the_default_client_is_bad_input(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.setenv("HOME", str(tmp_path))

    with pytest.raises(BadInput, match="no Kubernetes configuration"):
        KubernetesTarget("hms-prod")

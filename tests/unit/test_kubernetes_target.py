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
from hms.targets.kubernetes import KubernetesApiError, KubernetesTarget, configmap_name
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


async def apply(c: Cluster, sha256: str, version: int, activate_at: Any = AT, actor: str = "alice") -> dict:
    return await call(c.target().apply, PROTOCOL, sha256=sha256, version=version, activate_at=activate_at, actor=actor)


# -- create / update / idempotence ------------------------------------------------------------


@pytest.mark.asyncio
async def test_first_apply_creates_the_configmap_and_restarts_hms_api(cluster: Cluster) -> None:
    result = await apply(cluster, SHA_A, 1)

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
async def test_applying_a_new_bundle_makes_the_current_one_previous(cluster: Cluster) -> None:
    await apply(cluster, SHA_A, 1)
    first_restart = cluster.restarted_at()

    result = await apply(cluster, SHA_B, 2, activate_at="2027-01-01T00:00:00+00:00", actor="bob")

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
    assert cluster.count("PATCH", DEPLOYMENTS) == 2
    assert cluster.restarted_at() != first_restart  # a new value, or the Deployment would not roll


@pytest.mark.asyncio
async def test_reapplying_the_current_bundle_changes_nothing_and_does_not_restart(cluster: Cluster) -> None:
    await apply(cluster, SHA_A, 1)
    await apply(cluster, SHA_B, 2)
    before = copy.deepcopy(cluster.configmap())
    writes_before = len(cluster.emulator[kmock.method.PATCH]) + len(cluster.emulator[kmock.method.POST])

    again = await apply(cluster, SHA_B.upper(), 2, actor="carol")  # same hash, spelled in capitals

    assert again["action"] == "unchanged"
    assert again["changed"] is False and again["restarted"] is False
    assert cluster.configmap() == before  # not even the updated-by annotation moved
    assert len(cluster.emulator[kmock.method.PATCH]) + len(cluster.emulator[kmock.method.POST]) == writes_before
    assert cluster.count("PATCH", DEPLOYMENTS) == 2  # no restart patch the second time


@pytest.mark.asyncio
async def test_moving_the_activation_time_of_the_current_bundle_reschedules_without_shifting_previous(
    cluster: Cluster,
) -> None:
    await apply(cluster, SHA_A, 1)
    await apply(cluster, SHA_B, 2)

    result = await apply(cluster, SHA_B, 2, activate_at=datetime(2026, 12, 2, 5, 30, tzinfo=UTC))

    assert result["action"] == "rescheduled" and result["restarted"] is True
    data = cluster.configmap()["data"]
    assert (data["current"], data["previous"], data["activate_at"]) == (SHA_B, SHA_A, "2026-12-02T05:30:00Z")
    assert cluster.count("PATCH", DEPLOYMENTS) == 3


@pytest.mark.asyncio
async def test_the_same_hash_under_another_version_is_refused(cluster: Cluster) -> None:
    await apply(cluster, SHA_A, 1)
    before = copy.deepcopy(cluster.configmap())

    with pytest.raises(BadInput, match="is version 1"):
        await apply(cluster, SHA_A, 2)

    assert cluster.configmap() == before


# -- rollback ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_rollback_swaps_current_and_previous_activates_now_and_restarts(cluster: Cluster) -> None:
    await apply(cluster, SHA_A, 1)
    await apply(cluster, SHA_B, 2, activate_at="2030-01-01T00:00:00Z")
    restarts = cluster.count("PATCH", DEPLOYMENTS)
    start = datetime.now(UTC).replace(microsecond=0)

    result = await call(cluster.target().rollback, PROTOCOL, actor="ops-oncall")

    data = cluster.configmap()["data"]
    assert result["action"] == "rolled_back" and result["restarted"] is True
    assert (data["current"], data["current_version"]) == (SHA_A, "1")
    assert (data["previous"], data["previous_version"]) == (SHA_B, "2")
    activated = datetime.fromisoformat(data["activate_at"])
    assert start <= activated <= datetime.now(UTC)  # in force at once, not at the rolled-back bundle's time
    assert cluster.configmap()["metadata"]["annotations"]["hms/updated-by"] == "ops-oncall"
    assert cluster.count("PATCH", DEPLOYMENTS) == restarts + 1

    again = await call(cluster.target().rollback, PROTOCOL, actor="ops-oncall")  # rolling back a rollback
    assert (again["current"], again["previous"]) == (SHA_B, SHA_A)


@pytest.mark.asyncio
async def test_rollback_without_a_previous_bundle_is_bad_input_and_changes_nothing(cluster: Cluster) -> None:
    await apply(cluster, SHA_A, 1)
    before = copy.deepcopy(cluster.configmap())
    restarts = cluster.count("PATCH", DEPLOYMENTS)

    with pytest.raises(BadInput, match="no previous version") as caught:
        await call(cluster.target().rollback, PROTOCOL, actor="ops")

    assert caught.value.exit_code == 2
    assert cluster.configmap() == before
    assert cluster.count("PATCH", DEPLOYMENTS) == restarts


@pytest.mark.asyncio
async def test_rollback_of_a_protocol_never_deployed_is_bad_input(cluster: Cluster) -> None:
    with pytest.raises(BadInput, match="never deployed") as caught:
        await call(cluster.target().rollback, PROTOCOL, actor="ops")

    assert caught.value.exit_code == 2
    assert cluster.count("PATCH", DEPLOYMENTS) == 0
    assert cluster.count("POST", CONFIGMAPS) == 0


# -- concurrency -------------------------------------------------------------------------------


def competing_writer(c: Cluster, data: dict[str, str]) -> Any:
    """A rule for one GET: answer the stored (soon stale) object, then let 'someone else' write."""

    def answer(request: kmock.Request) -> dict[str, Any]:
        obj = c.emulator.objects[CONFIGMAPS, NS, CM]
        stale = copy.deepcopy(obj.raw)
        obj.patch({"metadata": {"resourceVersion": c.emulator.next_version()}, "data": data})
        return stale

    return answer


@pytest.mark.asyncio
async def test_a_write_between_our_read_and_our_patch_gets_409_and_we_apply_on_top_of_it(cluster: Cluster) -> None:
    await apply(cluster, SHA_A, 1)
    other = {"current": SHA_B, "current_version": "2", "previous": SHA_A, "previous_version": "1"}
    fetches = len(cluster.emulator[kmock.action.FETCH, CONFIGMAPS])
    cluster.emulator[kmock.action.FETCH, CONFIGMAPS][fetches : fetches + 1] << competing_writer(cluster, other)
    patches = len(cluster.emulator[kmock.method.PATCH, CONFIGMAPS])

    result = await apply(cluster, SHA_C, 3)

    # Our first patch carried the resourceVersion we read; the emulator refused it (409) and
    # stored nothing; we read again and built on the competing write: B is now previous, not A.
    assert result["action"] == "updated"
    data = cluster.configmap()["data"]
    assert (data["current"], data["previous"], data["previous_version"]) == (SHA_C, SHA_B, "2")
    config_patches = cluster.emulator[kmock.method.PATCH, CONFIGMAPS][patches:]
    assert [p.data["data"]["previous"] for p in config_patches if "data" in (p.data or {})] == [SHA_A, SHA_B]
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

    result = await apply(cluster, SHA_B, 2)

    assert cluster.count("POST", CONFIGMAPS) == 1  # ours, answered 409 AlreadyExists by the emulator itself
    assert any(e.status == 409 for e in cluster.emulator.errors if isinstance(e, kmock.KubernetesError))
    assert result["action"] == "updated"
    assert (result["current"], result["previous"]) == (SHA_B, SHA_A)


@pytest.mark.asyncio
async def test_a_rollback_racing_another_rollback_does_not_swap_back(cluster: Cluster) -> None:
    await apply(cluster, SHA_A, 1)
    await apply(cluster, SHA_B, 2)
    theirs = {"current": SHA_A, "current_version": "1", "previous": SHA_B, "previous_version": "2"}
    fetches = len(cluster.emulator[kmock.action.FETCH, CONFIGMAPS])
    cluster.emulator[kmock.action.FETCH, CONFIGMAPS][fetches : fetches + 1] << competing_writer(cluster, theirs)

    result = await call(cluster.target().rollback, PROTOCOL, actor="ops")

    # Our patch got 409; on the re-read B is no longer current because the other rollback
    # restored A: swapping again would put B back. Rolled back once, not twice.
    assert result["action"] == "unchanged" and result["changed"] is False
    data = cluster.configmap()["data"]
    assert (data["current"], data["previous"]) == (SHA_A, SHA_B)


@pytest.mark.asyncio
async def test_a_rollback_racing_a_new_deployment_stops_instead_of_undoing_it(cluster: Cluster) -> None:
    await apply(cluster, SHA_A, 1)
    await apply(cluster, SHA_B, 2)
    newer = {"current": SHA_C, "current_version": "3", "previous": SHA_B, "previous_version": "2"}
    fetches = len(cluster.emulator[kmock.action.FETCH, CONFIGMAPS])
    cluster.emulator[kmock.action.FETCH, CONFIGMAPS][fetches : fetches + 1] << competing_writer(cluster, newer)

    with pytest.raises(KubernetesApiError, match="changed while rolling back"):
        await call(cluster.target().rollback, PROTOCOL, actor="ops")

    assert cluster.configmap()["data"]["current"] == SHA_C


@pytest.mark.asyncio
async def test_conflicts_that_never_stop_end_in_an_api_error_after_bounded_attempts(cluster: Cluster) -> None:
    await apply(cluster, SHA_A, 1)
    other = {"current": SHA_B, "current_version": "2", "previous": SHA_A, "previous_version": "1"}
    fetches = len(cluster.emulator[kmock.action.FETCH, CONFIGMAPS])
    cluster.emulator[kmock.action.FETCH, CONFIGMAPS][fetches:] << competing_writer(cluster, other)
    restarts = cluster.count("PATCH", DEPLOYMENTS)

    with pytest.raises(KubernetesApiError, match="kept changing") as caught:
        await apply(cluster, SHA_C, 3)

    assert caught.value.status == 409 and caught.value.exit_code == 1
    assert len(cluster.emulator[kmock.action.FETCH, CONFIGMAPS]) - fetches == k8s_target.MAX_ATTEMPTS
    assert cluster.configmap()["data"]["current"] == SHA_B  # ours never landed
    assert cluster.count("PATCH", DEPLOYMENTS) == restarts


# -- restart -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_failed_restart_is_reported_and_the_next_apply_of_the_same_bundle_finishes_it(
    cluster: Cluster,
) -> None:
    cluster.emulator[kmock.method.PATCH, DEPLOYMENTS][:1] << 403

    with pytest.raises(KubernetesApiError, match="restart of hms-api failed.*403"):
        await apply(cluster, SHA_A, 1)

    read = await call(cluster.target().read, PROTOCOL)
    assert read["current"] == SHA_A and read["restart_pending"] is True

    retry = await apply(cluster, SHA_A, 1)

    assert retry["action"] == "unchanged" and retry["changed"] is False and retry["restarted"] is True
    assert "hms/restart-pending" not in cluster.configmap()["metadata"]["annotations"]
    assert cluster.count("PATCH", DEPLOYMENTS) == 2

    third = await apply(cluster, SHA_A, 1)  # and now truly nothing to do
    assert third["restarted"] is False and cluster.count("PATCH", DEPLOYMENTS) == 2


@pytest.mark.asyncio
async def test_a_namespace_without_the_deployment_gets_the_configmap_and_reports_no_restart(
    cluster: Cluster,
) -> None:
    result = await call(
        cluster.target("hms-preprod").apply, PROTOCOL, sha256=SHA_A, version=1, activate_at=AT, actor="alice"
    )

    assert result["changed"] is True and result["restarted"] is False
    assert cluster.configmap(namespace="hms-preprod")["data"]["current"] == SHA_A


@pytest.mark.asyncio
async def test_the_restart_is_the_kubectl_rollout_restart_patch(cluster: Cluster) -> None:
    await apply(cluster, SHA_A, 1)

    patch = cluster.emulator[kmock.method.PATCH, DEPLOYMENTS][-1]
    assert patch.headers["Content-Type"] == "application/strategic-merge-patch+json"
    sent = json.loads(patch.body)
    assert set(sent) == {"spec"}
    restarted_at = sent["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
    assert datetime.fromisoformat(restarted_at).tzinfo is not None
    assert cluster.deployment()["spec"]["replicas"] == 2  # nothing else in the Deployment touched


# -- reconcile (what the pipeline calls: the registry's state, applied as is) -----------------


def state(current: str, version: int, previous: str | None = None, previous_version: int | None = None,
          at: str = AT) -> k8s_target.PolicyState:
    return k8s_target.PolicyState.build(current, version, previous, previous_version, at)


async def reconcile(c: Cluster, desired: k8s_target.PolicyState | None) -> dict:
    return await call(c.target().reconcile, PROTOCOL, desired, actor="ops")


@pytest.mark.asyncio
async def test_reconcile_creates_then_leaves_an_identical_state_alone(cluster: Cluster) -> None:
    first = await reconcile(cluster, state(SHA_A, 1))
    restarted_at = cluster.restarted_at()
    writes = cluster.count("PATCH", CONFIGMAPS) + cluster.count("POST", CONFIGMAPS)

    again = await reconcile(cluster, state(SHA_A, 1))

    assert first["action"] == "created" and first["restarted"] is True
    assert again["action"] == "unchanged" and again["changed"] is False and again["restarted"] is False
    assert cluster.count("PATCH", CONFIGMAPS) + cluster.count("POST", CONFIGMAPS) == writes
    assert cluster.restarted_at() == restarted_at


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

    removed = await reconcile(cluster, None)
    again = await reconcile(cluster, None)

    assert removed["action"] == "removed" and removed["restarted"] is True
    assert (CONFIGMAPS, NS, CM) not in cluster.emulator.objects or cluster.emulator.objects[CONFIGMAPS, NS, CM].deleted
    assert await call(cluster.target().read, PROTOCOL) is None
    assert again["action"] == "unchanged" and again["changed"] is False
    assert cluster.count("PATCH", DEPLOYMENTS) == restarts + 1


@pytest.mark.asyncio
async def test_reconcile_finishes_a_restart_an_earlier_change_could_not_make(cluster: Cluster) -> None:
    cluster.emulator[kmock.method.PATCH, DEPLOYMENTS][:1] << 500
    with pytest.raises(KubernetesApiError, match="restart of hms-api failed"):
        await reconcile(cluster, state(SHA_A, 1))

    retry = await reconcile(cluster, state(SHA_A, 1))

    assert retry["action"] == "unchanged" and retry["restarted"] is True
    assert "hms/restart-pending" not in cluster.configmap()["metadata"]["annotations"]


def test_a_state_from_the_registry_is_validated() -> None:
    with pytest.raises(BadInput, match="previous"):
        state(SHA_A, 1, SHA_B, None)
    with pytest.raises(BadInput, match="sha256"):
        state("not-a-hash", 1)
    with pytest.raises(BadInput, match="timezone"):
        state(SHA_A, 1, at="2026-12-01T00:00:00")


# -- read and validation -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_read_returns_none_for_an_unknown_protocol_and_the_state_for_a_known_one(cluster: Cluster) -> None:
    assert await call(cluster.target().read, PROTOCOL) is None

    await apply(cluster, SHA_A, 1)
    await apply(cluster, SHA_B, 2)
    state = await call(cluster.target().read, PROTOCOL)

    assert state["current"] == SHA_B and state["current_version"] == 2
    assert state["previous"] == SHA_A and state["previous_version"] == 1
    assert state["activate_at"] == AT_UTC and state["updated_by"] == "alice"
    assert state["restart_pending"] is False


@pytest.mark.asyncio
async def test_emulator_round_trips_configmaps_created_by_the_official_client(cluster: Cluster) -> None:
    core = client.CoreV1Api(cluster.api)
    await call(core.create_namespaced_config_map, NS, {"metadata": {"name": "probe"}, "data": {"k": "v"}})

    read = await call(core.read_namespaced_config_map, "probe", NS)

    assert read.data == {"k": "v"}


@pytest.mark.asyncio
async def test_a_hand_edited_configmap_is_refused_not_built_upon(cluster: Cluster) -> None:
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
        await apply(cluster, SHA_B, 2)
    with pytest.raises(BadInput, match="data.current"):
        await call(cluster.target().rollback, PROTOCOL, actor="ops")
    assert cluster.count("PATCH", CONFIGMAPS) == 0


BAD_APPLY_ARGUMENTS = [
    pytest.param({"protocol_id": "Wildfire"}, "protocol id", id="uppercase-id"),
    pytest.param({"protocol_id": "wild_fire"}, "protocol id", id="underscore-id"),
    pytest.param({"protocol_id": "-wildfire"}, "protocol id", id="leading-hyphen-id"),
    pytest.param({"protocol_id": "x" * 64}, "protocol id", id="64-char-id"),
    pytest.param({"sha256": "abc"}, "sha256", id="short-hash"),
    pytest.param({"sha256": "g" * 64}, "sha256", id="non-hex-hash"),
    pytest.param({"sha256": "a" * 65}, "sha256", id="long-hash"),
    pytest.param({"sha256": "sha256:" + "a" * 64}, "sha256", id="prefixed-hash"),
    pytest.param({"version": 0}, "version", id="version-0"),
    pytest.param({"version": True}, "version", id="version-bool"),
    pytest.param({"version": "3"}, "version", id="version-string"),
    pytest.param({"activate_at": datetime(2026, 12, 1)}, "activate_at", id="naive-datetime"),
    pytest.param({"activate_at": "2026-12-01T00:00:00"}, "activate_at", id="naive-string"),
    pytest.param({"activate_at": "tomorrow"}, "activate_at", id="not-a-time"),
    pytest.param({"actor": ""}, "actor", id="empty-actor"),
    pytest.param({"actor": "a\nb"}, "actor", id="control-char-actor"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("override", "where"), BAD_APPLY_ARGUMENTS)
async def test_bad_arguments_are_refused_before_any_api_call(
    cluster: Cluster, override: dict[str, Any], where: str
) -> None:
    kwargs: dict[str, Any] = {"protocol_id": PROTOCOL, "sha256": SHA_A, "version": 1, "activate_at": AT, "actor": "a"}
    kwargs.update(override)
    protocol_id = kwargs.pop("protocol_id")

    with pytest.raises(BadInput) as caught:
        await call(cluster.target().apply, protocol_id, **kwargs)

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

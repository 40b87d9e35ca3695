"""The chaos job's parts: victim counts, windows, the oracle that judges answers, pod deletion by selector."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime

import httpx
import kmock
import pytest
from kubernetes import client

from hms import bundle, chaos, protocol
from hms.errors import BadInput
from tests.conftest import WILDFIRE

PODS = kmock.resource("v1/pods")


@pytest.mark.parametrize(("alive", "fraction", "expected"), [(3, 0.1, 1), (10, 0.1, 1), (20, 0.1, 2), (21, 0.1, 3),
                                                             (4, 0.5, 2), (1, 0.1, 1), (0, 0.5, 0)])
def test_victims_are_the_fraction_rounded_up_and_at_least_one(alive, fraction, expected):
    assert chaos.victims(alive, fraction) == expected


def test_windows_parse_and_nonsense_is_bad_input():
    assert chaos.parse_window("5m") == 300 and chaos.parse_window("10s") == 10
    for bad in ("", "5", "-1s", "0s", "1d"):
        with pytest.raises(BadInput):
            chaos.parse_window(bad)


def _oracle():
    b = bundle.read_bytes(bundle.build(protocol.load(WILDFIRE)))
    return b, chaos.Oracle({b.sha256: b}, lambda pid, at: b.sha256)


def test_the_oracle_accepts_right_answers_and_names_wrong_ones():
    b, oracle = _oracle()
    case = b.protocol.tests[0]
    g = chaos.Golden(b.protocol.id, case["name"], case["input"])
    now = datetime.now(UTC)
    good = {"bundle_sha256": b.sha256, "outputs": {"eligible": True, "amount": 4000}}
    assert oracle.wrong(g, good, now, now) is None
    bad = {"bundle_sha256": b.sha256, "outputs": {"eligible": True, "amount": 3999}}
    assert "amount = 3999, expected 4000" in oracle.wrong(g, bad, now, now)
    stranger = {"bundle_sha256": "e" * 64, "outputs": good["outputs"]}
    assert "unknown bundle" in oracle.wrong(g, stranger, now, now)


def test_the_oracle_rejects_a_version_that_is_not_in_force():
    b, _ = _oracle()
    oracle = chaos.Oracle({b.sha256: b}, lambda pid, at: "f" * 64)
    case = b.protocol.tests[0]
    g = chaos.Golden(b.protocol.id, case["name"], case["input"])
    now = datetime.now(UTC)
    body = {"bundle_sha256": b.sha256, "outputs": {"eligible": True, "amount": 4000}}
    assert "not the version in force" in oracle.wrong(g, body, now, now)


def _pod(name: str, app: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "hms-preprod",
            "labels": {"app.kubernetes.io/name": app}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}


@pytest.mark.asyncio
async def test_kubernetes_fleet_deletes_the_fraction_of_matching_pods_only():
    emulator = kmock.KubernetesEmulator()
    async with emulator, kmock.Server(emulator) as server:
        for i in range(10):
            emulator.objects[PODS, "hms-preprod", f"hms-api-{i}"] = _pod(f"hms-api-{i}", "hms-api")
        emulator.objects[PODS, "hms-preprod", "postgres-0"] = _pod("postgres-0", "postgres")
        api = client.CoreV1Api(client.ApiClient(client.Configuration(host=str(server.url).rstrip("/"))))

        def run():
            fleet = chaos.KubernetesFleet("hms-preprod", ["http://svc"], api)
            killed = fleet.kill(0.2, random.Random(1))
            remaining = [p.metadata.name for p in api.list_namespaced_pod("hms-preprod").items]
            return fleet, killed, remaining

        fleet, killed, remaining = await asyncio.to_thread(run)
    assert len(killed) == 2 and fleet.kills == 2
    assert all(k.startswith("hms-api-") for k in killed)
    assert "postgres-0" in remaining and not set(killed) & set(remaining)


class _SlowHealingFleet:
    """A fleet whose killed replica needs `heal` seconds to be ready again (a loaded host's restart)."""

    def __init__(self, heal: float) -> None:
        self.heal, self.kills, self.restarts, self.killed_at = heal, 0, 0, []

    def urls(self):
        return ["http://replica"]

    def kill(self, fraction, rng):
        self.kills += 1
        self.killed_at.append(time.monotonic())
        return ["replica-0"]

    def whole(self):
        return not self.killed_at or time.monotonic() - self.killed_at[-1] >= self.heal

    def wait_ready(self, timeout):
        return True

    def stop(self):
        return None


class _AlwaysRight:
    def __init__(self, b) -> None:
        self.b = b

    def post(self, path, body):
        return httpx.Response(200, json={"bundle_sha256": self.b.sha256,
                                         "outputs": {"eligible": True, "amount": 4000}})


def test_a_kill_waits_until_every_replica_is_ready_again_and_the_report_says_so():
    b, oracle = _oracle()
    case = b.protocol.tests[0]
    goldens = [chaos.Golden(b.protocol.id, case["name"], case["input"])]
    fleet = _SlowHealingFleet(heal=2.5)
    report = chaos.Report("staging", 1, 3.0)
    chaos.Experiment(fleet, _AlwaysRight(b), goldens, oracle, report, kill_fraction=0.1, seed=1).run()
    # Due every 1 s from 1 s on; the first kill's replica is not whole until 3.5 s, after the window.
    assert fleet.kills == 1 and report.kills_waited == 1
    assert any("waited for every replica" in line for line in report.lines())
    assert report.to_dict()["kills_waited_for_a_whole_fleet"] == 1


def _ready_pod(name: str, ready: str | None) -> dict:
    pod = _pod(name, "hms-api")
    if ready is not None:
        pod["status"] = {"conditions": [{"type": "Ready", "status": ready}]}
    return pod


@pytest.mark.asyncio
async def test_a_kubernetes_fleet_is_whole_only_with_as_many_ready_pods_as_it_began_with():
    emulator = kmock.KubernetesEmulator()
    async with emulator, kmock.Server(emulator) as server:
        for i in range(3):
            emulator.objects[PODS, "hms-preprod", f"hms-api-{i}"] = _ready_pod(f"hms-api-{i}", "True")
        api = client.CoreV1Api(client.ApiClient(client.Configuration(host=str(server.url).rstrip("/"))))

        def run():
            fleet = chaos.KubernetesFleet("hms-preprod", ["http://svc"], api)
            before = fleet.whole()
            killed = fleet.kill(0.1, random.Random(1))[0]
            after_kill = fleet.whole()
            emulator.objects[PODS, "hms-preprod", "hms-api-new"] = _ready_pod("hms-api-new", "False")
            starting = fleet.whole()
            emulator.objects[PODS, "hms-preprod", "hms-api-new"] = _ready_pod("hms-api-new", "True")
            return before, killed, after_kill, starting, fleet.whole()

        before, killed, after_kill, starting, healed = await asyncio.to_thread(run)
    assert before and killed.startswith("hms-api-")
    assert not after_kill and not starting and healed

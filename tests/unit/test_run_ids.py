"""Run ids never burn (issue 18, item 2): a bundle's first run is ``bundle-<sha12>``, a later one adds its UTC start.

``hms ci run`` asks Airflow (a real HTTP server here: tests.fake_airflow) which runs of the bundle exist: it
follows one still queued or running, or one that succeeded, and starts a new id after a failed one, where it
used to meet Airflow's raw 409.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hms import clock, run_state
from hms.airflow_api import AirflowApi
from hms.ci import bundle_prefix_of_run, choose_run, run_id_for, runs_bundle
from tests.fake_airflow import fake_airflow

SHA = "c4ceac6f476b" + "0" * 52
OTHER = "1a2b3c4d5e6f" + "f" * 52
DAG = "policy_wildfire-aid-2024"
# A winter morning in New York, 06:59:30 local: the id says UTC (11:59:30), the zone never leaks into it.
AT = datetime(2026, 1, 15, 6, 59, 30, tzinfo=ZoneInfo("America/New_York"))


def api(fake) -> AirflowApi:
    a = AirflowApi(fake.url, "admin", fake.password)
    a.login()
    return a


def test_a_bundles_first_run_is_named_after_it_and_a_later_run_adds_its_utc_start():
    assert run_id_for(SHA) == "bundle-c4ceac6f476b"
    assert run_id_for(SHA, AT) == "bundle-c4ceac6f476b-20260115T115930"
    assert run_id_for(SHA, AT + timedelta(seconds=1)) != run_id_for(SHA, AT)  # one second apart: two ids
    for run_id in (run_id_for(SHA), run_id_for(SHA, AT)):  # what the registry, rollback.sh and Airflow accept
        assert run_state.check_run_id(run_id) == run_id and bundle_prefix_of_run(run_id) == SHA[:12]
    with pytest.raises(ValueError, match="aware"):
        run_id_for(SHA, datetime(2026, 1, 15, 11, 59, 30))


def test_run_ids_that_do_not_name_a_bundle_are_told_apart():
    for run_id in ("manual__2026-01-15T11:59:30+00:00", "bundle-c4ce", "bundle-c4ceac6f476b-soon", "run-b"):
        assert bundle_prefix_of_run(run_id) is None, run_id
    assert runs_bundle({"dag_run_id": "manual__x", "conf": {"sha256": SHA}}, SHA)
    assert runs_bundle({"dag_run_id": "manual__x", "conf": {"bundle": SHA}}, SHA)
    assert not runs_bundle({"dag_run_id": run_id_for(OTHER), "conf": {"sha256": OTHER}}, SHA)


def test_the_first_run_of_a_bundle_takes_its_own_id():
    with fake_airflow() as fake:
        fake.add_run(DAG, run_id_for(OTHER), "failed")
        assert choose_run(api(fake), DAG, SHA) == (run_id_for(SHA), None)


def test_a_second_run_of_a_bundle_whose_run_failed_gets_a_new_id_that_names_it_and_starts():
    with fake_airflow() as fake, clock.frozen(AT):
        fake.add_run(DAG, run_id_for(SHA), "failed", {"sha256": SHA})
        a = api(fake)
        run_id, followed = choose_run(a, DAG, SHA)
        assert (run_id, followed) == (run_id_for(SHA, AT), None)
        assert a.trigger(DAG, run_id, {"sha256": SHA}) is True  # no 409: it starts
        fake.runs[DAG][run_id]["state"] = "failed"
        with clock.frozen(AT + timedelta(minutes=3)):  # and a third, after that one failed too
            third, _ = choose_run(a, DAG, SHA)
        assert third == run_id_for(SHA, AT + timedelta(minutes=3)) and third not in fake.runs[DAG]


def test_a_bundle_whose_run_is_still_active_is_followed_not_started_twice():
    with fake_airflow() as fake, clock.frozen(AT.astimezone(UTC)):
        fake.add_run(DAG, run_id_for(SHA), "failed")
        fake.add_run(DAG, run_id_for(SHA, AT - timedelta(hours=1)), "running")
        assert choose_run(api(fake), DAG, SHA) == (
            run_id_for(SHA, AT - timedelta(hours=1)),
            "is already running this bundle; following it",
        )
        fake.add_run(DAG, "manual__2026-01-15T12:00:00+00:00", "queued", {"bundle": SHA})  # picked in the UI
        assert choose_run(api(fake), DAG, SHA)[0] == "manual__2026-01-15T12:00:00+00:00"


def test_a_bundle_whose_newest_run_succeeded_is_followed_not_deployed_again():
    with fake_airflow() as fake:
        fake.add_run(DAG, run_id_for(SHA), "success")
        assert choose_run(api(fake), DAG, SHA) == (
            run_id_for(SHA),
            "already took this bundle through (success); following it",
        )

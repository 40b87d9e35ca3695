"""The trigger form's bundle list (issue 18, item 1): every pushed bundle of a protocol with its version, short
sha256 and status, read in one statement for all protocols, and a free-text field saying why when the registry
cannot be read while Airflow parses the DAG file.
"""

from __future__ import annotations

import pytest
from sqlalchemy import event

from hms import clock, deployments, pushed_bundles
from hms.chaos import free_port
from hms.registry import db
from hms.registry.db import session_scope
from tests.conftest import CHIP
from tests.deploy_helpers import config, promote_all, ready, record, review_as, until_in_force, variant

PID, CHIP_ID = "wildfire-aid-2024", "chip-income-cap"


def registry_with_bundles_in_every_state() -> dict[str, str]:
    """wildfire v2 live in prod, v3 rolled back everywhere by its run, v4 approved; chip v1 rejected, v2 waiting."""
    cfg = config()
    v2 = ready(record(variant(2)), cfg)
    promote_all(v2, cfg, run_id="bundle-v2")
    v3 = ready(record(variant(3)), cfg)
    promote_all(v3, cfg, run_id="bundle-v3")
    with session_scope() as s:
        deployments.rollback_run(s, "bundle-v3", actor="ops", config=cfg)
    until_in_force()  # the registry is described once the rollback has switched
    v4 = ready(record(variant(4)), cfg)
    c1 = record(variant(1, CHIP))
    review_as(c1, "alice", "legal", "reject", "cites the 2023 poverty line")
    c2 = record(variant(2, CHIP))
    return {"v2": v2.sha256, "v3": v3.sha256, "v4": v4.sha256, "c1": c1.sha256, "c2": c2.sha256}


def test_each_protocols_pushed_bundles_are_listed_newest_first_with_version_short_sha_and_status(registry_url):
    sha = registry_with_bundles_in_every_state()
    got = pushed_bundles.read([PID, CHIP_ID, "no-such-protocol"], config())
    assert got.unavailable is None
    assert [b.label for b in got.of(PID)] == [
        f"v4 · {sha['v4'][:12]} · approved",
        f"v3 · {sha['v3'][:12]} · rolled back",
        f"v2 · {sha['v2'][:12]} · live in prod",
    ]
    assert [(b.sha256, b.status) for b in got.of(CHIP_ID)] == [
        (sha["c2"], "waiting for review"),
        (sha["c1"], "rejected"),
    ]
    assert got.of("no-such-protocol") == []


def test_older_versions_say_they_are_superseded_and_a_scheduled_prod_activation_says_when(registry_url):
    from datetime import timedelta

    cfg = config()
    v2 = ready(record(variant(2)), cfg)
    promote_all(v2, cfg, activate_at=clock.now() + timedelta(days=2))
    record(variant(3))
    statuses = {b.version: b.status for b in pushed_bundles.read([PID], cfg).of(PID)}
    assert statuses[3] == "waiting for review"
    assert statuses[2].startswith("scheduled in prod for ") and statuses[2].endswith(("EST", "EDT"))
    with session_scope() as s:  # prod called off: v2 is back to live in preprod, and superseded is not its news
        deployments.rollback(s, PID, "prod", actor="ops", config=cfg)
    assert {b.version: b.status for b in pushed_bundles.read([PID], cfg).of(PID)}[2] == "live in preprod"
    v1_only = record(variant(1))
    assert {b.version: b.status for b in pushed_bundles.read([PID], cfg).of(PID)}[1] == "superseded by v3"
    assert v1_only.sha256


def test_all_protocols_are_read_in_one_statement_not_one_per_protocol(registry_url):
    registry_with_bundles_in_every_state()
    engine = db.get_engine()
    seen: list[str] = []

    def count(conn, cursor, statement, *args):  # SQLAlchemy's before_cursor_execute signature
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        got = pushed_bundles.read([PID, CHIP_ID, "federal-eitc-2026", "snap-texas-fy2026"], config())
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(got.of(PID)) == 3 and len(got.of(CHIP_ID)) == 2
    assert len(seen) == 1, seen
    assert "content" not in seen[0].split("FROM")[0]  # never the bundles' bytes


def test_an_unreachable_registry_gives_no_lists_and_says_why(monkeypatch):
    monkeypatch.setenv("HMS_DATABASE_URL", f"postgresql+psycopg2://hms:x@127.0.0.1:{free_port()}/hms")
    db.reset_engines()
    got = pushed_bundles.read([PID], config())
    assert got.by_protocol == {} and got.of(PID) == []
    assert got.unavailable is not None and "cannot open the registry" in got.unavailable, got.unavailable


@pytest.fixture
def airflow_param():
    pytest.importorskip("airflow.sdk")
    from hms_operators.dag_factory import NO_PICK, bundle_param

    return bundle_param, NO_PICK


def test_the_trigger_form_offers_the_pushed_bundles_as_a_labelled_drop_down(registry_url, airflow_param):
    bundle_param, no_pick = airflow_param
    sha = registry_with_bundles_in_every_state()
    param = bundle_param(PID, pushed_bundles.read([PID], config()))
    assert param.value is None and param.schema["type"] == ["null", "string"]
    assert param.schema["enum"] == [None, sha["v4"], sha["v3"], sha["v2"]]
    assert param.schema["values_display"] == {
        None: no_pick,
        sha["v4"]: f"v4 · {sha['v4'][:12]} · approved",
        sha["v3"]: f"v3 · {sha['v3'][:12]} · rolled back",
        sha["v2"]: f"v2 · {sha['v2'][:12]} · live in prod",
    }
    assert param.resolve(sha["v3"]) == sha["v3"] and param.resolve(None) is None


def test_with_the_registry_down_the_bundle_field_is_free_text_and_its_description_says_why(airflow_param):
    bundle_param, _ = airflow_param
    param = bundle_param(PID, pushed_bundles.PushedBundles(unavailable="BadInput: cannot open the registry"))
    assert "enum" not in param.schema
    assert "could not be read when Airflow parsed this DAG (BadInput: cannot open the registry)" in param.description
    assert f"{PID}@VERSION" in param.description
    assert param.resolve("wildfire-aid-2024@3") == "wildfire-aid-2024@3"

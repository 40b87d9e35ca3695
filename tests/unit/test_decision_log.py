"""The decision log: every answer recorded off the request path, inputs masked as their data class declares."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from hms import clock, decision_log_key, decision_query, protocol
from hms.cli import main
from hms.decision_masking import HASH_PREFIX, Masking, keyed_hash
from hms.errors import BadInput
from hms.service.app import create_app
from hms.service.decision_log import DatabaseSink, DecisionLog
from hms.service.source import RegistrySource
from tests.conftest import WILDFIRE
from tests.deploy_helpers import config, promote_all, ready, record, variant

FAMILY = {"household_size": 4, "household_income": 40123.5, "county_fire_declared": True}
DECIDE = "/v1/protocols/wildfire-aid-2024/decide"


def _log(**kw) -> DecisionLog:
    return DecisionLog("prod", kw.pop("sink", None) or DatabaseSink(), decision_log_key.load("prod"), **kw)


@pytest.fixture
def prod(hms_home):
    """prod serving wildfire v3; a replica whose answers are logged."""
    cfg = config()
    b = record(variant(3))
    ready(b, cfg)
    promote_all(b, cfg)
    dlog = _log()
    with TestClient(create_app(RegistrySource("prod"), poll_interval=0.02, decision_log=dlog)) as client:
        yield client, dlog, b


def test_every_answer_single_and_batch_is_logged_with_its_bundle_as_of_outputs_and_latency(prod):
    client, dlog, b = prod
    one = client.post(DECIDE, json={"input": FAMILY}).json()
    batch = client.post(DECIDE + "/batch", json={"inputs": [FAMILY, {**FAMILY, "county_fire_declared": False}]}).json()
    dlog.flush()
    logged = decision_query.show(one["decision_id"])
    assert (logged.environment, logged.protocol_id, logged.version, logged.bundle_sha256) == (
        "prod", "wildfire-aid-2024", 3, b.sha256)
    assert logged.as_of == datetime.fromisoformat(one["as_of"])
    assert logged.outputs == one["outputs"] == {"eligible": True, "amount": 4000}
    assert logged.latency_ms > 0 and logged.batch_id is None
    rows = [decision_query.show(r["decision_id"]) for r in batch["results"]]
    assert [r.outputs["amount"] for r in rows] == [4000, 0]
    assert rows[0].batch_id is not None and rows[0].batch_id == rows[1].batch_id
    assert dlog.status().written == 3


def test_personal_inputs_are_stored_as_keyed_hashes_and_public_ones_in_clear(prod, hms_home):
    client, dlog, _ = prod
    d = client.post(DECIDE, json={"input": FAMILY}).json()
    dlog.flush()
    logged = decision_query.show(d["decision_id"])
    key = decision_log_key.load("prod")
    assert logged.input == {
        "household_size": keyed_hash(key.secret, "household_size", 4),
        "household_income": keyed_hash(key.secret, "household_income", 40123.5),
        "county_fire_declared": True,
    }
    assert logged.key_id == key.id
    # Never in clear anywhere in the database file, and the key is not in it either.
    db_bytes = b"".join(p.read_bytes() for p in hms_home.glob("registry.db*"))
    assert b"40123.5" not in db_bytes and key.secret.hex().encode() not in db_bytes


def test_sensitive_and_protected_inputs_are_dropped_and_declared_keep_is_kept():
    inputs = {
        "income": {"type": "number", "data_class": "personal", "purpose": "compared with the limit", "log": "keep",
                   "log_purpose": "replay of an income limit change"},
        "size": {"type": "integer", "data_class": "personal", "purpose": "sets the poverty line"},
        "ssn": {"type": "string", "data_class": "sensitive", "purpose": "matches the applicant's record"},
        "ssn_link": {"type": "string", "data_class": "sensitive", "purpose": "links repeated claims", "log": "hash"},
        "age": {"type": "integer", "data_class": "protected", "purpose": "the statute draws the age line"},
        "county": {"type": "boolean", "data_class": "public", "purpose": "only declared counties qualify"},
    }
    rec = {"income": 1.5, "size": 3, "ssn": "123-45-6789", "ssn_link": "123-45-6789", "age": 17, "county": True}
    out = Masking.of(inputs).apply(rec, b"k" * 32)
    assert out["income"] == 1.5 and out["county"] is True
    assert out["size"].startswith(HASH_PREFIX) and out["ssn_link"].startswith(HASH_PREFIX)
    assert "ssn" not in out and "age" not in out
    # A household's members are masked field by field; undeclared structure (a member's role) is kept.
    hh = Masking.of(inputs).apply({"household": {"county": True}, "members": [{"age": 9, "role": "child"}]}, b"k" * 32)
    assert hh == {"household": {"county": True}, "members": [{"role": "child"}]}


@pytest.mark.parametrize(("decl", "where", "says"), [
    ({"data_class": "personal", "log": "keep"}, "inputs.household_income.log", "needs log_purpose"),
    ({"data_class": "sensitive", "log": "keep"}, "inputs.household_income.log", "never logged in clear"),
    ({"data_class": "protected", "protected_characteristic": "age", "log": "hash"},
     "inputs.household_income.log", "can only be dropped"),
    ({"data_class": "personal", "log": "sometimes"}, "inputs.household_income.log", "not one of keep, hash, drop"),
    ({"data_class": "personal", "log": "hash", "log_purpose": "replay of the limit"},
     "inputs.household_income.log_purpose", "belongs with log: keep"),
])
def test_a_log_declaration_the_data_class_does_not_allow_is_refused_naming_the_field(decl, where, says):
    data = protocol.load(WILDFIRE).data
    spec = data["inputs"]["household_income"]
    spec.update(decl)
    with pytest.raises(BadInput) as e:
        protocol.from_data(data, "p.yml")
    assert says in e.value.message
    assert where in (e.value.where or "")


def test_a_failing_sink_never_fails_a_decision_and_shows_in_readyz_and_metrics(hms_home, tmp_path):
    cfg = config()
    b = record(variant(3))
    ready(b, cfg)
    promote_all(b, cfg)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    dlog = _log(sink=DatabaseSink(f"sqlite:///{blocker}/log.db"))  # its directory cannot be made
    with TestClient(create_app(RegistrySource("prod"), poll_interval=0.02, decision_log=dlog)) as client:
        r = client.post(DECIDE, json={"input": FAMILY})
        assert r.status_code == 200 and r.json()["outputs"]["amount"] == 4000
        dlog.flush()
        ready_ = client.get("/readyz")
        assert ready_.status_code == 200
        log_state = ready_.json()["decision_log"]
        assert log_state["ok"] is False and log_state["dropped"]["sink_error"] == 1 and log_state["last_error"]
        text = client.get("/metrics").text
        assert 'hms_decision_log_dropped_total{reason="sink_error"} 1.0' in text
        assert "hms_decision_log_failures_total 1.0" in text


def test_a_full_queue_drops_and_counts_the_answer_instead_of_waiting(hms_home):
    cfg = config()
    b = record(variant(3))
    ready(b, cfg)
    promote_all(b, cfg)
    small = _log(queue_size=1)
    locker = sqlite3.connect(hms_home / "registry.db", isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # another writer holds the database: the log's writer waits on it
    try:
        with TestClient(create_app(RegistrySource("prod"), poll_interval=0.02, decision_log=small)) as c:
            assert c.post(DECIDE, json={"input": FAMILY}).status_code == 200
            deadline = time.monotonic() + 5
            while small.status().queued and time.monotonic() < deadline:  # the writer took it and is waiting
                time.sleep(0.01)
            codes = [c.post(DECIDE, json={"input": FAMILY}).status_code for _ in range(2)]
            assert codes == [200, 200]  # the second waits in the queue, the third finds it full: both answered
            assert c.get("/readyz").json()["decision_log"]["dropped"]["queue_full"] == 1
            assert 'hms_decision_log_dropped_total{reason="queue_full"} 1.0' in c.get("/metrics").text
            locker.execute("ROLLBACK")
            small.flush()
            assert small.status().written == 2
    finally:
        locker.close()


def test_decisions_older_than_the_retention_are_pruned(prod):
    client, dlog, _ = prod
    old = client.post(DECIDE, json={"input": FAMILY}).json()["decision_id"]
    dlog.flush()
    pruner = _log(retention=timedelta(days=30), prune_every=0.0)
    with clock.shifted(timedelta(days=31)):
        pruner.start()
        pruner.flush()
        pruner.stop()
    assert pruner.status().pruned == 1
    with pytest.raises(BadInput):
        decision_query.show(old)


def test_hms_decisions_show_and_list_read_the_log_and_refuse_what_they_cannot_read(prod, capsys):
    client, dlog, _ = prod
    ids = [client.post(DECIDE, json={"input": {**FAMILY, "household_size": n}}).json()["decision_id"] for n in (1, 2)]
    dlog.flush()
    capsys.readouterr()
    assert main(["decisions", "show", ids[0], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["decision"]
    assert shown["decision_id"] == ids[0] and shown["outputs"] == {"eligible": True, "amount": 1000}
    assert main(["decisions", "list", "--protocol", "wildfire-aid-2024", "--since", "30d", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [d["decision_id"] for d in listed["decisions"]] == ids[::-1]  # newest first
    assert main(["decisions", "list", "--since", clock.now().isoformat(), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 0
    assert main(["decisions", "show", "no-such-id"]) == 2
    assert "no decision 'no-such-id'" in capsys.readouterr().err
    assert main(["decisions", "list", "--since", "yesterday"]) == 2
    assert "--since" in capsys.readouterr().err
    future = (clock.now() + timedelta(days=1)).isoformat()
    assert main(["decisions", "list", "--since", future]) == 2


def test_the_environment_key_is_created_private_and_a_key_others_can_read_is_refused(hms_home):
    key = decision_log_key.load("staging")
    path = decision_log_key.key_path("staging")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert decision_log_key.load("staging") == key != decision_log_key.load("prod")
    os.chmod(path, 0o644)
    with pytest.raises(BadInput) as e:
        decision_log_key.load("staging")
    assert "readable by others" in e.value.message and e.value.where == str(path)


def test_the_log_table_exists_after_upgrade_with_its_window_index(hms_home):
    from hms.registry import db

    db.upgrade()
    con = sqlite3.connect(hms_home / "registry.db")
    indexes = {r[1] for r in con.execute("PRAGMA index_list('decisions')")}
    assert "ix_decisions_env_protocol_at" in indexes


def identify(request: Request) -> str:
    """The test host's "who is calling": a header (the Airflow plugin validates a JWT instead)."""
    from hms.web import WebError

    user = request.headers.get("x-user")
    if not user:
        raise WebError(401, "no user", field="x-user")
    return user


def test_the_hms_api_reads_the_log_for_ops_and_refuses_a_clerk(prod):
    """``GET /api/decisions[/{id}]``: what ``hms decisions`` reads, for the roles that answer for the services."""
    from hms.web import create_app as web_app

    client, dlog, b = prod
    ids = [client.post(DECIDE, json={"input": {**FAMILY, "household_size": n}}).json()["decision_id"] for n in (1, 2)]
    dlog.flush()
    api = TestClient(web_app(identify))
    listed = api.get("/api/decisions", params={"protocol": "wildfire-aid-2024", "since": "30d"},
                     headers={"x-user": "ops"})
    assert listed.status_code == 200, listed.text
    assert [d["decision_id"] for d in listed.json()["decisions"]] == ids[::-1]
    one = api.get(f"/api/decisions/{ids[0]}", headers={"x-user": "ops"}).json()
    assert one["bundle_sha256"] == b.sha256 and one["outputs"] == {"eligible": True, "amount": 1000}
    assert one["input"]["household_size"] != 1  # personal: the keyed hash the log holds, never the value
    refused = api.get("/api/decisions", headers={"x-user": "alice"})
    assert refused.status_code == 403 and "ops, admin, auditor" in refused.json()["detail"]
    assert api.get("/api/decisions/no-such-id", headers={"x-user": "ops"}).status_code == 404
    bad = api.get("/api/decisions", params={"since": "yesterday"}, headers={"x-user": "ops"})
    assert bad.status_code == 422 and bad.json()["field"] == "since"
    assert api.get("/api/decisions").status_code == 401


def test_a_replica_keeps_decisions_as_long_as_the_pipeline_config_says_unless_its_flag_overrides(hms_home):
    from argparse import Namespace

    from hms.cli.serve import _decision_log

    configured = _decision_log(Namespace(env="prod", log_retention=None), "90d")
    flagged = _decision_log(Namespace(env="prod", log_retention="7d"), "90d")
    assert (configured.retention, flagged.retention) == (timedelta(days=90), timedelta(days=7))

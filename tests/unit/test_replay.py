"""Replay: a candidate evaluated on the decisions prod really made, and what would change — never a guess."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from hms import bundle, clock, decision_log_key, protocol
from hms.cli import main
from hms.registry import store
from hms.registry.db import session_scope
from hms.replay import replay
from hms.service.app import create_app
from hms.service.decision_log import DatabaseSink, DecisionLog
from hms.service.source import RegistrySource
from tests.deploy_helpers import config, promote_all, ready, record, variant

DECIDE = "/v1/protocols/wildfire-aid-2024/decide"
KEEP = {"log": "keep", "log_purpose": "replay of a change of the income limit on real decisions"}
FAMILIES = {
    "raised": {"household_size": 4, "household_income": 40000, "county_fire_declared": True},  # 4000 → 4400
    "over_new_limit": {"household_size": 4, "household_income": 100000, "county_fire_declared": True},  # → 0
    "undeclared_county": {"household_size": 3, "household_income": 10000, "county_fire_declared": False},
    "capped": {"household_size": 5, "household_income": 50000, "county_fire_declared": True},  # 5000 either way
    "single_over": {"household_size": 1, "household_income": 70000, "county_fire_declared": True},  # never
}


def wildfire(version: int, *, keep: bool, **params) -> protocol.Protocol:
    data = variant(version, **params).data
    if keep:
        for name in ("household_size", "household_income"):
            data["inputs"][name].update(KEEP)
    return protocol.from_data(data, f"wildfire v{version}")


def serve_and_decide(keep: bool) -> dict[str, str]:
    """prod serving v3 (inputs kept or hashed as ``keep`` says); each family asked once. Name → decision id."""
    cfg = config()
    b = record(wildfire(3, keep=keep))
    ready(b, cfg)
    promote_all(b, cfg)
    dlog = DecisionLog("prod", DatabaseSink(), decision_log_key.load("prod"))
    with TestClient(create_app(RegistrySource("prod"), decision_log=dlog)) as client:
        ids = {name: client.post(DECIDE, json={"input": rec}).json()["decision_id"] for name, rec in FAMILIES.items()}
        dlog.flush()
    return ids


def candidate(version: int, *, keep: bool = True, **params) -> bundle.Bundle:
    p = wildfire(version, keep=keep, **params)
    raw = bundle.build(p)
    b = bundle.read_bytes(raw)
    with session_scope() as s:
        store.record_bundle(s, sha256=b.sha256, protocol_id=p.id, version=p.version, content=raw,
                            manifest=b.manifest, created_by="tester")
    return b


def test_replay_counts_the_decisions_that_would_change_eligibility_and_amount_with_example_ids(hms_home):
    ids = serve_and_decide(keep=True)
    result = replay(candidate(4, per_member=1100, income_limit_pct=3.0), "prod", clock.now() - timedelta(days=30))
    assert (result.logged, result.replayed, result.changed, result.unchanged) == (5, 5, 2, 3)
    assert (result.to_ineligible, result.to_eligible) == (1, 0)
    assert result.examples["to_ineligible"] == [ids["over_new_limit"]]
    assert (result.amount_up, result.amount_up_total, result.examples["amount_up"]) == (1, 400.0, [ids["raised"]])
    assert (result.amount_down, result.amount_down_total, result.amount_down_max) == (1, 4000.0, 4000.0)
    assert result.unreplayable == [] and result.ok
    back = replay(candidate(5, income_limit_pct=5.0), "prod", clock.now() - timedelta(days=30))
    assert (back.to_eligible, back.examples["to_eligible"], back.changed) == (1, [ids["single_over"]], 1)


def test_replay_says_which_field_the_log_keeps_only_as_a_hash_instead_of_guessing(hms_home):
    serve_and_decide(keep=False)
    result = replay(candidate(4, keep=False, per_member=1100), "prod", clock.now() - timedelta(days=30))
    assert (result.logged, result.replayed, result.changed, result.unreplayable_decisions) == (5, 0, 0, 5)
    sentences = [u.sentence() for u in result.unreplayable]
    assert sentences == [
        "candidate reads household_income, which the log keeps only as a keyed hash: 5 decisions cannot be "
        "replayed on that field",
        "candidate reads household_size, which the log keeps only as a keyed hash: 5 decisions cannot be "
        "replayed on that field",
    ]
    assert any("keyed hash" in line for line in result.lines())


def test_a_field_the_logged_version_never_asked_for_is_named_not_invented(hms_home):
    serve_and_decide(keep=True)
    data = wildfire(4, keep=True).data
    data["inputs"]["evacuated"] = {"type": "boolean", "data_class": "public",
                                   "purpose": "evacuated households get more"}
    data["rules"]["amount"] = "(min(max_payment, per_member * household_size) + (500 if evacuated else 0)) " \
                              "if eligible else 0"
    for t in data["tests"]:
        t["input"]["evacuated"] = False
    p = protocol.from_data(data, "with evacuated")
    result = replay(p, "prod", clock.now() - timedelta(days=30))
    assert [(u.field, u.kept, u.decisions) for u in result.unreplayable] == [("evacuated", "absent", 5)]
    assert "the logged version did not ask for it" in result.unreplayable[0].sentence()


def test_only_decisions_inside_the_window_are_replayed(hms_home):
    serve_and_decide(keep=True)
    b = candidate(4, per_member=1100)
    with clock.shifted(timedelta(days=40)):
        assert replay(b, "prod", clock.now() - timedelta(days=30)).logged == 0
        assert replay(b, "prod", clock.now() - timedelta(days=50)).logged == 5
        assert replay(b, "staging", clock.now() - timedelta(days=50)).logged == 0


def test_hms_policy_replay_records_the_check_and_fails_when_the_candidate_fails_on_a_real_input(hms_home, capsys,
                                                                                                tmp_path):
    ids = serve_and_decide(keep=True)
    data = wildfire(4, keep=True).data
    data["rules"]["amount"] = "min(max_payment, per_member * household_size * 40 / (household_income - 40000)) " \
                              "if eligible else 0"
    data["tests"] = [{"name": "one", "input": FAMILIES["capped"], "expect": {"eligible": True}}]
    raw = bundle.build(protocol.from_data(data, "dividing"))
    pkg = tmp_path / "candidate.tgz"
    pkg.write_bytes(raw)
    b = bundle.read_bytes(raw)
    with session_scope() as s:
        store.record_bundle(s, sha256=b.sha256, protocol_id=b.protocol.id, version=4, content=raw,
                            manifest=b.manifest, created_by="tester")
    capsys.readouterr()
    assert main(["policy", "replay", str(pkg), "--env", "prod", "--since", "30d", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["failed"] == 1 and out["failures"][0][0] == ids["raised"] and "division by zero" in out["failures"][0][1]
    assert out["replayed"] == 5 and out["ok"] is False
    with session_scope(read_only=True) as s:
        check = store.latest_checks(s, b.sha256)["replay"]
    assert check.ok is False and json.loads(check.summary)["failed"] == 1


@pytest.mark.parametrize(("argv", "where"), [
    (["--env", "qa"], "qa"),
    (["--since", "last month"], "--since"),
    (["--since", "2d", "--until", "3d"], "--until"),
])
def test_hms_policy_replay_refuses_bad_input_with_exit_2_and_records_nothing(hms_home, capsys, argv, where):
    b = candidate(4, per_member=1100)
    assert main(["policy", "replay", f"sha256:{b.sha256}", *argv]) == 2
    assert where in capsys.readouterr().err
    with session_scope(read_only=True) as s:
        assert "replay" not in store.latest_checks(s, b.sha256)


def test_the_pipeline_stage_line_says_how_many_logged_decisions_would_change(hms_home):
    from hms.ci import StageLines, TaskEvent

    serve_and_decide(keep=False)
    hashed = replay(candidate(4, keep=False, per_member=1100), "prod", clock.now() - timedelta(days=30)).to_dict()
    lines = StageLines(environments=["staging", "prod"])
    assert lines.line(TaskEvent("test.replay", "success", hashed)) == (
        "[replay] ✅ 0 of 0 of prod's logged decisions would change; 5 not replayable (fields the log does not keep "
        "in clear)")
    empty = replay(candidate(5, keep=False), "staging", clock.now() - timedelta(days=30)).to_dict()
    said = lines.line(TaskEvent("test.replay", "success", empty))
    assert said is not None and said.startswith("[replay] ✅ no decisions logged in staging")


def test_without_since_the_replay_reads_the_pinned_policys_window(hms_home, capsys):
    """The window a clerk's evidence covers is policy (decision_log.replay_window), not a constant of the DAG."""
    from tests.deploy_helpers import pin_config

    with clock.frozen(clock.now() - timedelta(hours=3)):  # three hours ago: outside a 2h window
        serve_and_decide(keep=True)
    dlog = DecisionLog("prod", DatabaseSink(), decision_log_key.load("prod"))
    with TestClient(create_app(RegistrySource("prod"), decision_log=dlog)) as client:  # and the same ones now
        for rec in FAMILIES.values():
            assert client.post(DECIDE, json={"input": rec}).status_code == 200
        dlog.flush()
    pin_config(decision_log={"replay_window": "2h", "retention": "90d"})
    b = candidate(4, per_member=1100)
    capsys.readouterr()
    assert main(["policy", "replay", f"sha256:{b.sha256}", "--env", "prod", "--json"]) in (0, 1)
    assert json.loads(capsys.readouterr().out)["replayed"] == len(FAMILIES)
    assert main(["policy", "replay", f"sha256:{b.sha256}", "--env", "prod", "--since", "4h", "--json"]) in (0, 1)
    assert json.loads(capsys.readouterr().out)["replayed"] == 2 * len(FAMILIES)


def test_a_decision_log_setting_that_is_not_an_age_is_refused_naming_it():
    from hms.errors import BadInput
    from tests.deploy_helpers import config

    assert config().decision_log.replay_window == "30d" and config().decision_log.retention == "400d"
    with pytest.raises(BadInput, match="decision_log.replay_window"):
        config(decision_log={"replay_window": "a month"})

"""The review web app of the core (hms.web), hosted with a plain header identity instead of Airflow's JWT.

These prove the app's own behaviour — codes, the core's review rules, moving an activation, escaping —
on a real SQLite registry; tests/integration/test_review_api.py proves the same app inside Airflow's
API server with real Airflow tokens.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
from datetime import datetime, timedelta

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from hms import clock, deployments, pinned_policy, protocol
from hms.cli import main as hms_main
from hms.pipeline_config import load_pipeline_config
from hms.registry import store
from hms.registry.db import session_scope
from hms.web import WebError, create_app
from tests.conftest import CHIP, WILDFIRE
from tests.deploy_helpers import record, record_checks, until_in_force, write_config

WHY = {"reason": "gazette date moved"}  # a move states why (issue 18)

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def identify(request: Request) -> str:
    """The test host's "who is calling": a header (the Airflow plugin validates a JWT instead)."""
    user = request.headers.get("x-user")
    if not user:
        raise WebError(401, "no user", field="x-user")
    return user


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app(identify, login_url="/login"))


def as_(user: str) -> dict[str, str]:
    return {"x-user": user}


@pytest.fixture(autouse=True)
def pipeline_config(tmp_path, monkeypatch):
    """The repository's settings with a freeze window of this test's own, five weeks from the clock."""
    start = _monday_noon() + timedelta(days=14)
    window = {
        "reason": "test change freeze",
        "start": start.isoformat(),
        "end": (start + timedelta(days=2)).isoformat(),
        "environments": ["prod"],
    }
    path = write_config(tmp_path / "pipeline.yml", freeze_windows=[window])
    monkeypatch.setenv("HMS_PIPELINE_CONFIG", str(path))
    return start


def bundle_of(
    pid: str = "wildfire-aid-2024",
    version: int = 3,
    author: str | None = None,
    effective_at: datetime | None = None,
    **params,
):
    data = copy.deepcopy(protocol.load(WILDFIRE).data)
    data["metadata"].update(id=pid, version=version)
    if effective_at is not None:
        data["metadata"]["effective_at"] = effective_at.isoformat()
    if author:
        data["metadata"]["author"] = author
    data["parameters"].update(params)
    return record(protocol.from_data(data, f"{pid} v{version}"))


def with_checks(b) -> None:
    """Record the test and scan as the pipeline does (the clerk page shows them; every deploy needs them)."""
    with contextlib.redirect_stdout(io.StringIO()):
        hms_main(["policy", "test", f"sha256:{b.sha256}", "--record"])
        hms_main(["scan", f"sha256:{b.sha256}", "--record"])


def test_every_route_refuses_a_caller_the_host_did_not_identify(client):
    b = bundle_of()
    for method, path in (
        ("get", "/api/reviews"),
        ("post", f"/api/reviews/{b.sha256}/approve"),
        ("get", "/api/protocols"),
        ("post", f"/api/activations/{b.sha256}/move"),
    ):
        r = client.request(method, path, json={})
        assert r.status_code == 401, path
        assert r.json()["field"] == "x-user"
        assert r.headers["www-authenticate"] == "Bearer"
    page = client.get("/reviews", headers={"accept": "text/html"})
    assert page.status_code == 401 and 'href="/login"' in page.text


def test_two_clerks_approve_through_the_api_and_the_core_policy_is_satisfied(client):
    b = bundle_of()
    pending = client.get("/api/reviews", headers=as_("alice")).json()["pending"]
    assert [p["sha256"] for p in pending] == [b.sha256]
    r = client.post(f"/api/reviews/{b.sha256}/approve", headers=as_("alice"), json={"comment": "legal ok"})
    assert r.status_code == 200 and r.json()["role"] == "legal"
    assert r.json()["status"]["still_needed"] == 1
    r = client.post(f"/api/reviews/{b.sha256}/approve", headers=as_("bob"), json={})
    assert r.status_code == 200 and r.json()["status"]["satisfied"] is True
    with session_scope() as s:  # the same answer the review sensor gets
        assert deployments.approval_status(s, b, load_pipeline_config()).satisfied
    body = client.get("/api/reviews", headers=as_("alice")).json()
    assert body["pending"] == [] and body["decided"][0]["state"] == "approved"


def test_a_clerk_holding_two_roles_reviews_in_the_role_still_missing(client):
    b = bundle_of()
    client.post(f"/api/reviews/{b.sha256}/approve", headers=as_("alice"), json={})
    r = client.post(f"/api/reviews/{b.sha256}/approve", headers=as_("carol"), json={})
    assert r.json()["role"] == "budget" and r.json()["status"]["satisfied"]


def test_a_rejection_needs_a_comment_and_then_stops_the_bundle(client):
    b = bundle_of()
    r = client.post(f"/api/reviews/{b.sha256}/reject", headers=as_("bob"), json={"comment": "  "})
    assert r.status_code == 422 and r.json()["field"] == "comment"
    r = client.post(f"/api/reviews/{b.sha256}/reject", headers=as_("bob"), json={"comment": "over budget"})
    assert r.status_code == 200 and r.json()["status"]["rejected"] is True


@pytest.mark.parametrize(
    ("user", "body", "status", "field"),
    [
        ("dana", {}, 403, "user"),  # a scheduler holds no review role
        ("mallory", {}, 403, "user"),  # not in the pipeline config at all
        ("alice", {"role": "budget"}, 403, "role"),  # a role alice does not hold
        ("alice", {"role": "janitor"}, 422, "role"),  # not a review role of this bundle
        ("alice", {"comment": "x" * 2001}, 422, "comment"),
        ("alice", {"surprise": 1}, 422, "surprise"),
    ],
)
def test_a_review_the_rules_refuse_names_the_field_and_records_nothing(client, user, body, status, field):
    b = bundle_of()
    r = client.post(f"/api/reviews/{b.sha256}/approve", headers=as_(user), json=body)
    assert (r.status_code, r.json()["field"]) == (status, field), r.json()
    with session_scope() as s:
        assert deployments.reviews_for(s, b.sha256, pinned_policy.governing(s)) == []


def test_the_author_of_a_protocol_cannot_review_it_even_holding_the_role(client):
    b = bundle_of(author="alice")
    r = client.post(f"/api/reviews/{b.sha256}/approve", headers=as_("alice"), json={})
    assert r.status_code == 403 and "author" in r.json()["detail"]


def test_unknown_malformed_superseded_and_repeated_reviews_get_their_own_codes(client):
    old = bundle_of(version=3)
    r = client.post(f"/api/reviews/{'ab' * 32}/approve", headers=as_("alice"), json={})
    assert (r.status_code, r.json()["field"]) == (404, "sha256")
    r = client.post("/api/reviews/not-a-hash/approve", headers=as_("alice"), json={})
    assert (r.status_code, r.json()["field"]) == (422, "sha256")
    r = client.post(f"/api/reviews/{old.sha256}/maybe", headers=as_("alice"), json={})
    assert (r.status_code, r.json()["field"]) == (422, "decision")
    client.post(f"/api/reviews/{old.sha256}/approve", headers=as_("alice"), json={})
    r = client.post(f"/api/reviews/{old.sha256}/reject", headers=as_("alice"), json={"comment": "changed my mind"})
    assert (r.status_code, r.json()["field"]) == (409, "user")
    bundle_of(version=4, max_payment=4000)
    r = client.post(f"/api/reviews/{old.sha256}/approve", headers=as_("bob"), json={})
    assert (r.status_code, r.json()["field"]) == (409, "sha256") and "superseded by v4" in r.json()["detail"]


def test_an_oversized_body_is_refused_before_it_is_read(client):
    b = bundle_of()
    r = client.post(
        f"/api/reviews/{b.sha256}/approve",
        headers={**as_("alice"), "content-type": "application/json"},
        content=b'{"comment": "' + b"x" * 70_000 + b'"}',
    )
    assert r.status_code == 413


def _staged(b, at: datetime, run_id: str = "manual__run-1") -> None:
    cfg = load_pipeline_config()
    with session_scope() as s:
        have = store.latest_checks(s, b.sha256)
    record_checks(b, [k for k in ("test", "scan", "chaos") if k not in have])  # what the pipeline would have run
    with session_scope() as s:
        deployments.record_review(s, b, user="alice", role="legal", decision="approve", comment="", config=cfg)
        deployments.record_review(s, b, user="bob", role="budget", decision="approve", comment="", config=cfg)
        for env in cfg.environment_names[:-1]:
            deployments.deploy(s, b, env, activate_at=None, actor="t", config=cfg, run_id=run_id)
        deployments.deploy(s, b, "prod", activate_at=at, actor="t", config=cfg, run_id=run_id)


def _monday_noon() -> datetime:
    """A weekday noon in New York, three weeks ahead of the clock: outside every freeze window of the tests."""
    d = clock.now() + timedelta(days=21)
    while d.weekday() != 0:
        d += timedelta(days=1)
    return d.replace(hour=17, minute=0, second=0, microsecond=0)


def test_a_scheduler_moves_a_pending_activation_and_the_run_keeps_following_it(client):
    b = bundle_of()
    first = _monday_noon()
    _staged(b, first)
    later = first + timedelta(days=7, hours=1)
    r = client.post(
        f"/api/activations/{b.sha256}/move", headers=as_("dana"), json={"effective_at": later.isoformat(), **WHY}
    )
    assert r.status_code == 200, r.json()
    assert datetime.fromisoformat(r.json()["activate_at"]) == later
    from hms.gates import activation_time

    assert activation_time("manual__run-1", "prod") == later  # what the flip task waits for
    with session_scope() as s:
        assert [d.activate_at for d in deployments.pending(s, "prod", b.protocol.id)] == [later]
    ops = client.get("/api/protocols", headers=as_("alice")).json()["protocols"][0]
    prod = next(e for e in ops["environments"] if e["environment"] == "prod")
    assert [p["activate_at"] for p in prod["pending"]] == [later.isoformat()]
    assert {h["state"] for h in ops["history"]} >= {"cancelled", "pending", "live"}
    moved = [h for h in ops["history"] if h["move"]]
    assert {h["state"] for h in moved} == {"cancelled", "pending"}  # the row it ended and the row it made
    assert all(h["move"]["by"] == "dana" and h["move"]["reason"] == "gazette date moved" for h in moved)
    assert all(
        h["move"]["sentence"].startswith("moved from ") and " by dana: gazette date moved" in h["move"]["sentence"]
        for h in moved
    )
    page = client.get("/ops", headers=as_("dana")).text
    assert "moved <span" in page and "by dana: gazette date moved" in page


@pytest.mark.parametrize("reason", [None, "", "   "], ids=["absent", "empty", "blank"])
def test_a_move_without_a_reason_is_422_naming_reason_and_changes_nothing(client, reason):
    b = bundle_of()
    first = _monday_noon()
    _staged(b, first)
    body = {"effective_at": (first + timedelta(days=7)).isoformat()}
    if reason is not None:
        body["reason"] = reason
    r = client.post(f"/api/activations/{b.sha256}/move", headers=as_("dana"), json=body)
    assert r.status_code == 422 and "reason" in json.dumps(r.json()), r.json()
    with session_scope() as s:
        assert [d.activate_at for d in deployments.pending(s, "prod", b.protocol.id)] == [first]


@pytest.mark.parametrize(
    ("user", "when", "status", "field"),
    [
        ("alice", "+1h", 403, "user"),  # clerks do not move effective times
        ("dana", "tomorrow", 422, "effective_at"),
        ("dana", lambda: (clock.now() - timedelta(days=1)).isoformat(), 422, "effective_at"),  # the past
        ("dana", lambda: (_monday_noon() + timedelta(days=15)).isoformat(), 422, "effective_at"),  # the freeze
        ("dana", lambda: (_monday_noon() - timedelta(days=2)).isoformat(), 422, "effective_at"),  # before its date
    ],
    ids=["clerk", "unreadable", "past", "freeze", "before-effective"],
)
def test_a_move_the_rules_refuse_changes_nothing(client, user, when, status, field):
    b = bundle_of(effective_at=_monday_noon() - timedelta(days=1))
    first = _monday_noon()
    _staged(b, first)
    when = when() if callable(when) else when
    r = client.post(f"/api/activations/{b.sha256}/move", headers=as_(user), json={"effective_at": when, **WHY})
    assert (r.status_code, r.json()["field"]) == (status, field), r.json()
    with session_scope() as s:
        assert [d.activate_at for d in deployments.pending(s, "prod", b.protocol.id)] == [first]


def test_moving_a_bundle_without_a_pending_activation_is_a_conflict(client):
    b = bundle_of()
    r = client.post(f"/api/activations/{b.sha256}/move", headers=as_("dana"), json={"effective_at": "+1h", **WHY})
    assert (r.status_code, r.json()["field"]) == (409, "sha256")


# ---- pages -----------------------------------------------------------------------------------------


def test_the_clerk_page_shows_checks_chart_diff_and_approvers_and_renders_a_hostile_comment_inert(client):
    live = bundle_of(version=3)
    _staged(live, None, run_id="r0")  # v3 in force in prod
    b = bundle_of(version=4, max_payment=4500)
    with_checks(b)
    client.post(f"/api/reviews/{b.sha256}/approve", headers=as_("alice"), json={"comment": HOSTILE})
    r = client.get("/reviews", headers=as_("bob"))
    assert r.status_code == 200
    html = r.text
    assert f'data-sha="{b.sha256}"' in html
    # v4 lowers the cap, so three of the protocol's own cases fail: the clerk sees which, and why
    assert 'Tests <span class="badge bad">failed</span> 6 of 9 cases pass' in html
    assert "household of nine is capped at 5000: [&#39;amount: expected 5000, got 4500&#39;]" in html
    assert 'aria-label="cost vs cap"' in html and f'href="reports/{b.sha256}" target="_blank" rel="noopener"' in html
    assert "privacy(0) ethics(0) legal(0)" in html
    # the change in plain words first; the YAML text diff only behind a <details>
    assert (
        '<span class="what">max_payment</span>: <span class="old">5000</span> → <span class="new">4500</span>' in html
    )
    raw = html[html.index('<details class="raw-diff">') :]
    assert "Raw YAML diff against prod (v3)" in raw and '<span class="del">-  max_payment: 5000</span>' in raw
    assert '<span class="add">+  max_payment: 4500</span>' in raw
    assert html.index('class="change-set"') < html.index("<h3>Approvals so far</h3>") < html.index("raw-diff")
    assert "<b>alice</b> (legal) approved" in html
    assert HOSTILE not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "<script>" not in html  # the only script is the app's own file
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert 'data-decision="approve"' in html  # bob may still decide


def test_the_full_simulation_report_is_served_from_the_recorded_result(client):
    b = bundle_of()
    with_checks(b)
    r = client.get(f"/reports/{b.sha256}", headers=as_("alice"))
    assert r.status_code == 200 and "Cost against the budget cap" in r.text
    assert client.get(f"/reports/{bundle_of(version=5).sha256}", headers=as_("alice")).status_code == 404


def test_the_ops_view_shows_what_each_environment_serves_and_offers_moves_only_to_schedulers(client):
    b = bundle_of()
    _staged(b, _monday_noon())
    for user, can_move in (("dana", True), ("alice", False)):
        html = client.get("/ops", headers=as_(user)).text
        assert 'data-protocol="wildfire-aid-2024"' in html
        assert html.count("v3 <code>") == 2  # staging and preprod serve v3; prod has it pending
        assert ('class="move-form' in html) is can_move


def test_a_late_activation_says_plainly_it_is_not_retroactive_on_the_card_and_the_deploys_page(client):
    b = bundle_of(effective_at=clock.now() - timedelta(days=3))  # approved three days after its effective date
    _staged(b, None)
    for path in ("/ops", "/reviews"):
        html = client.get(path, headers=as_("alice")).text
        assert "passed; in force from" in html and "not retroactive" in html, path
    prod = next(
        e
        for e in client.get("/api/protocols", headers=as_("alice")).json()["protocols"][0]["environments"]
        if e["environment"] == "prod"
    )
    assert prod["live"]["note"].endswith("not retroactive")


def test_hostile_protocol_text_is_escaped_on_every_page(client):
    data = copy.deepcopy(protocol.load(WILDFIRE).data)
    data["metadata"]["title"] = HOSTILE
    b = record(protocol.from_data(data, "hostile title"))
    for path in ("/reviews", "/ops"):
        html = client.get(path, headers=as_("alice")).text
        assert HOSTILE not in html and "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in client.get("/reviews", headers=as_("alice")).text
    assert b.sha256 in client.get("/reviews", headers=as_("alice")).text


def test_the_page_script_is_served_by_the_app_and_uses_no_foreign_origin(client):
    r = client.get("/static/hms.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert "http://" not in r.text and "https://" not in r.text and "fetch(url" in r.text


def test_moving_an_activation_whose_preprod_was_rolled_back_is_a_conflict_and_changes_nothing(client):
    b = bundle_of()
    first = _monday_noon()
    _staged(b, first)
    with session_scope() as s:
        deployments.rollback(s, b.protocol.id, "preprod", actor="ops", config=load_pipeline_config())
    r = client.post(
        f"/api/activations/{b.sha256}/move",
        headers=as_("dana"),
        json={"effective_at": (first + timedelta(days=7)).isoformat(), **WHY},
    )
    assert (r.status_code, r.json()["field"]) == (409, "sha256") and "preprod" in r.json()["detail"]
    with session_scope() as s:
        assert [d.activate_at for d in deployments.pending(s, "prod", b.protocol.id)] == [first]


# ---- the typed contract: every /api answer is a model, and the models are what the core builds ----------------

# The only values that are genuinely free-form: what a Kubernetes target reports (its own document).
# A protocol change's old/new value is whatever the protocol holds there (number, text, table, test case); a
# logged decision's input and outputs are its protocol's (as masked: a hash where a personal value was).
FREE_FORM = {
    "LoggedDecisionOut.input",
    "LoggedDecisionOut.outputs",
    "AbortOut.kubernetes",
    "DeployOut.kubernetes",
    "RollbackOut.kubernetes",
    "RunRollbackOut.kubernetes",
    "ProtocolChangeOut.old",
    "ProtocolChangeOut.new",
}


def _free_form_values(doc: dict, name: str, seen: set[str]) -> set[str]:
    """Where a component reachable from ``name`` holds an untyped object or value (``dict[str, Any]``, ``Any``)."""
    if name in seen:
        return set()
    seen.add(name)
    found: set[str] = set()

    def walk(node: dict, where: str) -> None:
        if "$ref" in node:
            found.update(_free_form_values(doc, node["$ref"].rsplit("/", 1)[-1], seen))
            return
        parts = [*node.get("anyOf", ()), *node.get("oneOf", ()), *node.get("allOf", ())]
        if not parts and "type" not in node and "const" not in node and "enum" not in node:
            found.add(where)  # Any
        if (
            node.get("type") == "object"
            and "properties" not in node
            and node.get("additionalProperties") in (None, True, {})
        ):
            found.add(where)  # dict[str, Any]
        for part in parts:
            walk(part, where)
        for prop, sub in node.get("properties", {}).items():
            walk(sub, f"{name}.{prop}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key], where)

    walk(doc["components"]["schemas"][name], name)
    return found


def test_every_api_route_takes_a_request_model_and_answers_a_typed_model_in_the_openapi_document(client):
    from fastapi.routing import APIRoute

    doc = client.get("/api/openapi.json").json()
    api_routes = [r for r in client.app.routes if isinstance(r, APIRoute) and r.path.startswith("/api/")]
    assert {"/api/reviews", "/api/reviews/{sha256}/{decision}", "/api/protocols", "/api/activations/{sha256}/move"} <= {
        r.path for r in api_routes
    }
    free: set[str] = set()
    for route in api_routes:
        assert route.include_in_schema and route.response_model is not None, route.path
        for method in route.methods:
            op = doc["paths"][route.path][method.lower()]
            where = f"{method} {route.path}"
            if method != "GET":
                assert route.body_field is not None, f"{where} takes no request model"
            if route.body_field is not None:
                ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                assert ref.rsplit("/", 1)[-1].endswith("In"), where
            answer = op["responses"]["200"]["content"]["application/json"]["schema"]
            assert set(answer) == {"$ref"}, f"{where} answers an untyped {answer}"
            free |= _free_form_values(doc, answer["$ref"].rsplit("/", 1)[-1], set())
            for status in ("401", "409", "422"):
                assert op["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut"), (
                    where,
                    status,
                )
    assert free == FREE_FORM


def test_the_typed_answers_of_the_clerk_page_and_ops_view_are_exactly_what_the_core_builds():
    """A field hms.web.reviews adds that the models lack would vanish from the answer: it must not."""
    from hms.api import models
    from hms.web import reviews

    assert models.MAX_BOARD_COMMENT == reviews.MAX_COMMENT
    staged = bundle_of()
    first = _monday_noon()
    _staged(staged, first)  # live in staging and preprod, pending in prod
    other = bundle_of("other-aid", 1)
    with_checks(other)
    waiting = bundle_of("third-aid", 1)  # absent everywhere, never checked
    cfg = load_pipeline_config()

    def same(model, raw: dict) -> None:
        assert model.model_validate(raw).model_dump(mode="json") == raw

    with session_scope() as s:
        same(
            models.DecisionOut,
            reviews.review(
                s,
                other.sha256,
                reviews.Caller.of("alice", cfg),
                decision="approve",
                comment="ok",
                role=None,
                config=cfg,
            ),
        )
        same(
            models.DecisionOut,
            reviews.review(
                s, other.sha256, reviews.Caller.of("bob", cfg), decision="reject", comment="no", role=None, config=cfg
            ),
        )
    with session_scope() as s:
        alice = reviews.Caller.of("alice", cfg)
        pending, decided = reviews.review_board(s, alice, cfg)
        cards = [v.to_dict() for v in pending + decided]
        assert {c["state"] for c in cards} == {"waiting", "approved", "rejected"}
        assert {e["state"] for c in cards for e in c["environments"]} == {"live", "pending", "absent"}
        assert any(c["checks"] for c in cards) and any(c["reviews"] for c in cards)
        same(
            models.ReviewBoardOut,
            {
                "user": alice.user,
                "roles": list(alice.roles),
                "pending": [v.to_dict() for v in pending],
                "decided": [v.to_dict() for v in decided],
            },
        )
    with session_scope() as s:
        moved = reviews.move_activation(
            s,
            staged.sha256,
            reviews.Caller.of("dana", cfg),
            effective_at=(first + timedelta(days=7)).isoformat(),
            environment=None,
            reason="gazette date moved",
            config=cfg,
        )
        same(models.MoveOut, moved)
        assert list(models.MoveOut.model_validate(moved).model_dump()) == list(moved)  # the same order, too
    with session_scope() as s:
        ops = {"timezone": cfg.timezone, "protocols": reviews.ops_overview(s, cfg)}
        assert any(e["live"] and e["pending"] == [] for p in ops["protocols"] for e in p["environments"])
        assert any(e["pending"] for p in ops["protocols"] for e in p["environments"])
        same(models.ProtocolsOut, ops)
    assert waiting.sha256 in {c["sha256"] for c in cards}


def test_the_clerk_page_lists_the_scans_warnings_for_review(client):
    """CHIP reads age under an exemption: the scan passes, and the clerk sees that the legal role must approve."""
    b = record(protocol.load(CHIP))
    with_checks(b)
    html = client.get("/reviews", headers=as_("bob")).text
    assert "For review:" in html and "<code>inputs.age.exemption</code>" in html
    assert "the legal role must approve" in html


def test_a_scheduler_moves_an_activation_with_the_pickers_wall_time_in_the_pipelines_zone(client):
    from zoneinfo import ZoneInfo

    b = bundle_of()
    first = _monday_noon()
    _staged(b, first)
    ny = ZoneInfo("America/New_York")
    later = (first + timedelta(days=7)).astimezone(ny).replace(hour=0, minute=0)
    r = client.post(
        f"/api/activations/{b.sha256}/move",
        headers=as_("dana"),
        json={"effective_at": later.strftime("%Y-%m-%dT%H:%M"), "zone": "America/New_York", **WHY},
    )
    assert r.status_code == 200, r.json()
    assert datetime.fromisoformat(r.json()["activate_at"]) == later


@pytest.mark.parametrize(
    ("when", "zone", "field", "says"),
    [
        ("{year}-03-14T02:30", "America/New_York", "effective_at", "does not exist in America/New_York"),
        ("{year}-11-07T01:30", "America/New_York", "effective_at", "happens twice in America/New_York"),
        ("{year}-01-05T00:00", "Mars/Olympus", "zone", "unknown time zone 'Mars/Olympus'"),
        ("next tuesday", "America/New_York", "effective_at", "is not a date and time like"),
    ],
    ids=["spring-gap", "autumn-fold", "unknown-zone", "not-a-date"],
)
def test_a_pickers_wall_time_that_names_no_single_instant_is_refused_naming_the_field(client, when, zone, field, says):
    b = bundle_of()
    first = _monday_noon()
    _staged(b, first)
    year = first.year + 1
    if "03-14" in when or "11-07" in when:  # the DST days of that year in New York (2nd Sunday of March, 1st of Nov)
        from calendar import SUNDAY, monthcalendar

        march = [w[SUNDAY] for w in monthcalendar(year, 3) if w[SUNDAY]][1]
        nov = next(w[SUNDAY] for w in monthcalendar(year, 11) if w[SUNDAY])
        when = when.replace("03-14", f"03-{march:02d}").replace("11-07", f"11-{nov:02d}")
    r = client.post(
        f"/api/activations/{b.sha256}/move",
        headers=as_("dana"),
        json={"effective_at": when.format(year=year), "zone": zone, **WHY},
    )
    assert (r.status_code, r.json()["field"]) == (422, field), r.json()
    assert says in r.json()["detail"]
    with session_scope() as s:
        assert [d.activate_at for d in deployments.pending(s, "prod", b.protocol.id)] == [first]


def test_a_bundle_rolled_back_after_its_run_failed_says_so_on_its_card_not_a_dash(client):
    """Issue 18: the chips stopped at "—" for a bundle that had been live and was rolled back."""
    b = bundle_of()
    _staged(b, _monday_noon(), run_id="manual__failed")  # staging and preprod live, prod pending
    cfg = pinned_policy.governing()
    with session_scope() as s:
        deployments.rollback_run(s, "manual__failed", actor="ops", config=cfg)
    until_in_force()
    board = client.get("/api/reviews", headers=as_("alice")).json()
    (mine,) = [c for c in board["pending"] + board["decided"] if c["sha256"] == b.sha256]
    places = {e["environment"]: e for e in mine["environments"]}
    assert {env: e["state"] for env, e in places.items()} == {
        "staging": "rolled_back", "preprod": "rolled_back", "prod": "cancelled"}
    assert all(e["run_id"] == "manual__failed" and e["ended_at"] for e in places.values())
    html = client.get("/reviews", headers=as_("alice")).text
    chips = re.findall(r'data-env="(\w+)" data-state="(\w+)">\w+: (rolled back|cancelled) <time', html)
    assert chips == [("staging", "rolled_back", "rolled back"), ("preprod", "rolled_back", "rolled back"),
                     ("prod", "cancelled", "cancelled")]

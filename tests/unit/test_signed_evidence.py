"""Forgeries by someone who can write the registry database, refused because evidence is signed (issue 15).

Each test writes around the core as such a person would — raw INSERTs, an edited column, an envelope
copied onto another row — and shows the gate, ``in_force`` or a replica's snapshot refusing it, with the
reason. The keys are the embedded mode's (created on first use under this test's HMS_HOME).
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from hms import clock, deployments
from hms.attest import envelopes, keys, rows, statements
from hms.errors import CheckFailed
from hms.registry import store
from hms.registry.db import session_scope
from hms.registry.models import Approval, Check, Deployment
from hms.service.source import RegistrySource
from tests.deploy_helpers import approve, pin_config, promote_all, ready, record, record_checks, variant


def _insert_approval(sha: str, user: str, role: str, envelope: str | None = None) -> None:
    with session_scope() as s:
        s.execute(text("INSERT INTO approvals (bundle_sha256, user, role, decision, comment, at, envelope) "
                       "VALUES (:sha, :user, :role, 'approve', '', :at, :env)"),
                  {"sha": sha, "user": user, "role": role, "at": clock.now().isoformat(), "env": envelope})


def test_two_approvals_inserted_around_the_core_approve_nothing_and_prod_refuses() -> None:
    cfg = pin_config()
    b = record(variant(3))
    record_checks(b)
    _insert_approval(b.sha256, "alice", "legal")
    _insert_approval(b.sha256, "bob", "budget")
    with session_scope() as s:
        assert [(a.user, a.envelope) for a in s.scalars(select(Approval))] == [("alice", None), ("bob", None)]
        assert not deployments.approval_status(s, b, cfg).satisfied
        with pytest.raises(CheckFailed, match="approval policy not met"):
            deployments.deploy(s, b, "staging", activate_at=None, actor="mallory", config=cfg)


def test_an_approval_edited_after_signing_or_given_another_bundles_envelope_does_not_count() -> None:
    cfg = pin_config()
    v3 = record(variant(3))
    approve(v3, cfg)
    with session_scope() as s:
        alice = s.scalar(select(Approval).where(Approval.user == "alice"))
        stolen = alice.envelope
        alice.role = "budget"  # edited: the statement says legal
        assert "says role='legal', the row says 'budget'" in rows.approval_refusal(alice)
    v4 = record(variant(4))
    _insert_approval(v4.sha256, "alice", "legal", stolen)  # replayed onto another hash
    with session_scope() as s:
        row = s.scalar(select(Approval).where(Approval.bundle_sha256 == v4.sha256))
        assert f"not this bundle sha256:{v4.sha256}" in rows.approval_refusal(row)
        assert deployments.reviews_for(s, v4.sha256) == []


def test_a_deployment_inserted_around_the_core_is_never_served_and_the_replica_says_so() -> None:
    cfg = pin_config()
    v3 = ready(record(variant(3)), cfg)
    promote_all(v3, cfg)
    forged = record(variant(4, per_member=9999))  # never reviewed
    with session_scope() as s:
        s.execute(text(
            "INSERT INTO deployments (environment, protocol_id, bundle_sha256, version, state, activate_at, "
            "created_at, created_by) VALUES ('prod', :pid, :sha, 4, 'live', :at, :at, 'mallory')"),
            {"pid": forged.protocol.id, "sha": forged.sha256, "at": (clock.now() - timedelta(seconds=1)).isoformat()})
        store.bump_generation(s, "prod")
    with session_scope() as s:
        assert deployments.in_force(s, "prod", forged.protocol.id).version == 3
    snap = RegistrySource("prod").load()
    assert snap.timelines[forged.protocol.id].in_force(clock.now()).sha256 == v3.sha256
    assert len(snap.refused) == 1 and "prod v4" in snap.refused[0] and "unsigned" in snap.refused[0]


def test_a_signed_deployment_rebound_to_another_version_is_refused() -> None:
    cfg = pin_config()
    v3 = ready(record(variant(3)), cfg)
    promote_all(v3, cfg)
    with session_scope() as s:
        d = s.scalar(select(Deployment).where(Deployment.environment == "prod"))
        d.activate_at = d.activate_at - timedelta(days=30)  # backdating the row leaves its statement behind
        assert "says activate_at=" in rows.deployment_refusal(d)


def test_a_green_check_inserted_around_the_core_is_no_evidence() -> None:
    b = record(variant(3))
    with session_scope() as s:
        s.add(Check(bundle_sha256=b.sha256, kind="scan", ok=True, summary="{}", at=clock.now(), actor="airflow"))
    with session_scope() as s:
        assert "scan" not in store.latest_checks(s, b.sha256)


def test_a_key_not_among_the_trusted_ones_and_a_broken_signature_are_refused() -> None:
    from securesystemslib.signer import CryptoSigner

    b = record(variant(3))
    approve(b, pin_config())
    with session_scope() as s:
        a = s.scalar(select(Approval).where(Approval.user == "alice"))
        stmt = json.loads(base64.b64decode(json.loads(a.envelope)["payload"]))
        a.envelope = envelopes.sign(stmt, CryptoSigner.generate_ed25519())  # a stranger's key
        assert rows.approval_refusal(a).endswith("signed by no trusted key")
        env = json.loads(envelopes.sign(stmt))
        sig = env["signatures"][0]["sig"]
        env["signatures"][0]["sig"] = ("A" if sig[0] != "A" else "B") + sig[1:]
        a.envelope = json.dumps(env)
        assert rows.approval_refusal(a).endswith("the signature does not verify")


def test_a_revoked_keys_later_signatures_do_not_count_and_a_retired_keys_earlier_ones_still_do() -> None:
    b = record(variant(3))
    approve(b, pin_config())
    path = keys.trusted_keys_path()
    data = json.loads(path.read_text())
    with session_scope() as s:
        a = s.scalar(select(Approval).where(Approval.user == "alice"))
        data["keys"][0]["retired_at"] = (a.at + timedelta(seconds=1)).isoformat()
        path.write_text(json.dumps(data))
        assert rows.approval_refusal(a) is None
        data["keys"][0]["revoked_at"] = (a.at - timedelta(seconds=1)).isoformat()
        path.write_text(json.dumps(data) + " ")  # another size: re-read even within the mtime's resolution
        keys.reset()
        assert "revoked" in rows.approval_refusal(a)


def test_statements_are_in_toto_v1_about_the_bundle_hash_with_our_predicate_types() -> None:
    b = record(variant(3))
    approve(b, pin_config())
    with session_scope() as s:
        a = s.scalar(select(Approval).where(Approval.user == "bob"))
        v = envelopes.verify(a.envelope, sha256=b.sha256, predicate_type=statements.REVIEW, expect={})
    assert v.statement["_type"] == "https://in-toto.io/Statement/v1"
    assert v.statement["subject"] == [{"name": "bundle", "digest": {"sha256": b.sha256}}]
    assert v.predicate["reviewer"] == "bob" and v.predicate["role"] == "budget" and v.owner == "control-plane"
    assert json.loads(a.envelope)["payloadType"] == "application/vnd.in-toto+json"


def test_a_policy_row_inserted_around_config_apply_is_never_the_policy() -> None:
    import hashlib

    from hms import pinned_policy
    from hms.registry.models import Policy
    from tests.deploy_helpers import _config_text

    pinned = pin_config()
    text = _config_text(approvals={"required": 1, "roles": ["legal"]}, users={"mallory": ["legal", "admin"]})
    with session_scope() as s:
        s.add(Policy(sha256=hashlib.sha256(text.encode()).hexdigest(), text=text, source="my.yml",
                     applied_by="ops", applied_at=clock.now()))
    with session_scope() as s:
        assert pinned_policy.governing(s).sha256 == pinned.sha256
        newest = s.scalar(select(Policy).order_by(Policy.id.desc()))
        assert rows.policy_refusal(newest).endswith("unsigned")


def test_keygen_never_overwrites_a_key(tmp_path, capsys) -> None:
    from hms.cli import main

    key = tmp_path / "alice.pem"
    assert main(["keygen", "--out", str(key), "--user", "alice"]) == 0
    before = key.read_bytes()
    assert main(["keygen", "--out", str(key), "--user", "alice"]) == 2
    assert "a key is never overwritten" in capsys.readouterr().err and key.read_bytes() == before

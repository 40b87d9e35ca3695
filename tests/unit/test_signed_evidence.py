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

from hms import clock, deployments, pinned_policy
from hms.attest import envelopes, keys, rows, statements
from hms.errors import BadInput, CheckFailed
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
        assert "says role='legal', the row says 'budget'" in rows.approval_refusal(alice, keys.trusted())
    v4 = record(variant(4))
    _insert_approval(v4.sha256, "alice", "legal", stolen)  # replayed onto another hash
    with session_scope() as s:
        row = s.scalar(select(Approval).where(Approval.bundle_sha256 == v4.sha256))
        assert f"not this bundle sha256:{v4.sha256}" in rows.approval_refusal(row, keys.trusted())
        assert deployments.reviews_for(s, v4.sha256, pinned_policy.governing(s)) == []


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


def _prod_rows(s) -> list[Deployment]:
    return list(s.scalars(select(Deployment).where(Deployment.environment == "prod").order_by(Deployment.id)))


def test_an_end_written_around_the_core_rolls_nothing_back_on_a_fresh_or_a_running_replica() -> None:
    cfg = pin_config()
    promote_all(ready(record(variant(3)), cfg), cfg)
    v4 = ready(record(variant(4)), cfg)
    promote_all(v4, cfg)
    running = RegistrySource("prod")
    assert running.load().timelines[v4.protocol.id].in_force(clock.now()).sha256 == v4.sha256
    with session_scope() as s:  # a rollback nobody ordered: the live row ended, the one before it revived
        newest = _prod_rows(s)[-1]
        newest.state, newest.ended_at = "rolled_back", clock.now() - timedelta(seconds=1)
        assert "says state='live', the row says 'rolled_back'" in rows.deployment_refusal(newest)
        store.bump_generation(s, "prod")
    for source in (running, RegistrySource("prod")):
        snap = source.load()
        assert snap.timelines[v4.protocol.id].in_force(clock.now()).sha256 == v4.sha256
        assert len(snap.refused) == 1 and "prod v4" in snap.refused[0]
    with session_scope() as s:  # the core, failing closed, counts neither the row nor its forged end
        assert deployments.in_force(s, "prod", v4.protocol.id) is None


def test_a_rollback_undone_around_the_core_stays_rolled_back() -> None:
    cfg = pin_config()
    v3 = ready(record(variant(3)), cfg)
    promote_all(v3, cfg)
    v4 = ready(record(variant(4)), cfg)
    promote_all(v4, cfg)
    with session_scope() as s:
        deployments.rollback(s, v4.protocol.id, "prod", actor="ops", config=cfg)
    with session_scope() as s:  # v4's row revived: state live again, end cleared, its restoring row cancelled
        undone, restoring = _prod_rows(s)[-2:]
        undone.state, undone.ended_at = "live", None
        restoring.state, restoring.ended_at = "cancelled", clock.now()
        store.bump_generation(s, "prod")
    snap = RegistrySource("prod").load()
    assert snap.timelines[v3.protocol.id].in_force(clock.now() + timedelta(seconds=5)).sha256 == v3.sha256
    assert len(snap.refused) == 2 and all("serving its signed state" in r for r in snap.refused)


def test_a_deleted_deployment_row_is_still_served_by_a_running_replica_that_verified_it() -> None:
    cfg = pin_config()
    v3 = ready(record(variant(3)), cfg)
    promote_all(v3, cfg)
    running = RegistrySource("prod")
    running.load()
    with session_scope() as s:
        s.execute(text("DELETE FROM deployments WHERE environment = 'prod'"))
        store.bump_generation(s, "prod")
    snap = running.load()
    assert snap.timelines[v3.protocol.id].in_force(clock.now()).sha256 == v3.sha256
    assert "is gone from the registry" in snap.refused[0]


def test_a_run_state_edited_around_the_core_neither_revives_an_aborted_run_nor_lets_it_deploy() -> None:
    from hms import run_state
    from hms.registry.models import Run

    cfg = pin_config()
    v3 = ready(record(variant(3)), cfg)
    promote_all(v3, cfg, run_id="run-1")
    with session_scope() as s:
        row = s.get(Run, "run-1")
        assert rows.run_refusal(row) is None
        row.state = "aborted"  # forged: no abort was ever signed
        assert "says state='alive', the row says 'aborted'" in rows.run_refusal(row)
        assert run_state.aborted_at(s, ["run-1"]) == {"run-1": run_state.UNVERIFIED}
        row.state = "alive"
        s.execute(text("UPDATE runs SET envelope = NULL WHERE run_id = 'run-1'"))
    with session_scope() as s:
        assert run_state.aborted_at(s, ["run-1"]) == {"run-1": run_state.UNVERIFIED}
        with pytest.raises(CheckFailed, match="does not verify"):
            run_state.mark_alive(s, "run-1", actor="airflow")


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
        assert rows.approval_refusal(a, keys.trusted()).endswith("signed by no trusted key")
        env = json.loads(envelopes.sign(stmt))
        sig = env["signatures"][0]["sig"]
        env["signatures"][0]["sig"] = ("A" if sig[0] != "A" else "B") + sig[1:]
        a.envelope = json.dumps(env)
        assert rows.approval_refusal(a, keys.trusted()).endswith("the signature does not verify")


def test_a_revoked_keys_later_signatures_do_not_count_and_a_retired_keys_earlier_ones_still_do() -> None:
    b = record(variant(3))
    approve(b, pin_config())
    path = keys.trusted_keys_path()
    data = json.loads(path.read_text())
    with session_scope() as s:
        a = s.scalar(select(Approval).where(Approval.user == "alice"))
        data["keys"][0]["retired_at"] = (a.at + timedelta(seconds=1)).isoformat()
        path.write_text(json.dumps(data))
        assert rows.approval_refusal(a, keys.trusted()) is None
        data["keys"][0]["revoked_at"] = (a.at - timedelta(seconds=1)).isoformat()
        path.write_text(json.dumps(data) + " ")  # another size: re-read even within the mtime's resolution
        keys.reset()
        assert "revoked" in rows.approval_refusal(a, keys.trusted())


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


def _signed_review(b, key, cfg, user: str = "alice", role: str = "legal") -> str:
    stmt = rows.review_statement(b.sha256, reviewer=user, role=role, decision="approve", comment="",
                                 policy_sha256=cfg.sha256, at=clock.now())
    return envelopes.sign(stmt, keys.file_signer(key))


def test_a_clerks_key_counts_only_while_the_pinned_policy_lists_it_and_not_after_its_revocation(tmp_path) -> None:
    alice = keys.generate_user_key(tmp_path / "alice.pem", "alice")["signers"]
    b = record(variant(3))
    with session_scope() as s, pytest.raises(BadInput, match="signed by no trusted key"):
        cfg = pin_config()
        deployments.record_review(s, b, user="alice", role="legal", decision="approve", comment="", config=cfg,
                                  signed=_signed_review(b, tmp_path / "alice.pem", cfg))
    cfg = pin_config(signers=alice)
    with session_scope() as s:
        deployments.record_review(s, b, user="alice", role="legal", decision="approve", comment="", config=cfg,
                                  signed=_signed_review(b, tmp_path / "alice.pem", cfg))
        assert [r.user for r in deployments.reviews_for(s, b.sha256, cfg)] == ["alice"]
    revoked = [{**alice["alice"][0], "revoked_at": (clock.now() - timedelta(hours=1)).isoformat()}]
    cfg = pin_config(signers={"alice": revoked})
    with session_scope() as s:
        assert deployments.reviews_for(s, b.sha256, cfg) == []


def test_a_clerks_key_in_the_trusted_keys_file_is_refused_naming_the_policy_as_its_place(tmp_path) -> None:
    entry = {"keyid": "ab" * 32, "key": {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "00"}},
             "owner": "user:alice"}
    with pytest.raises(BadInput, match="pinned policy's signers"):
        keys.parse_trusted(json.dumps({"keys": [entry]}), "trusted.json")

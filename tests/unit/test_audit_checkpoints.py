"""A history rewritten by someone who read registry/audit.py — every later hash recomputed, the head reset —
passes the chain check alone; a signed checkpoint kept outside the database shows it (issue 15, item 4)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from hms.cli import main
from hms.registry import audit
from hms.registry.db import session_scope
from hms.registry.models import AuditEntry, AuditHead
from tests.deploy_helpers import approve, pin_config, record, variant


def _history(tmp_path: Path) -> Path:
    pin_config()
    approve(record(variant(3)))
    folder = tmp_path / "checkpoints"
    assert main(["audit", "checkpoint", "--dir", str(folder)]) == 0
    return folder


def _rechain(edit) -> None:
    """Edit rows as a database writer with the code at hand would, then recompute every hash and the head."""
    with session_scope() as s:
        rows = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        edit(s, rows)
        rows = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        prev = audit.GENESIS
        for e in rows:
            e.prev_hash = prev
            e.hash = prev = audit.row_hash(prev, e.id, e.at, e.actor, e.action, e.subject, e.details)
        head = s.get(AuditHead, 1)
        head.last_id, head.last_hash = (rows[-1].id if rows else 0), prev


def test_a_rewritten_row_with_every_later_hash_recomputed_fails_against_the_checkpoint(tmp_path, capsys) -> None:
    folder = _history(tmp_path)

    def forge(s, rows):
        review = next(e for e in rows if e.action == "review.approve" and e.actor == "bob")
        review.actor = "carol"
    _rechain(forge)
    assert main(["audit", "verify"]) == 0  # the chain alone: intact
    capsys.readouterr()
    assert main(["audit", "verify", "--checkpoint", str(folder), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and "rewritten" in out["checkpoint_problems"][0]


def test_a_truncation_after_a_checkpoint_is_found(tmp_path, capsys) -> None:
    folder = _history(tmp_path)

    def drop_last_two(s, rows):
        for e in rows[-2:]:
            s.delete(e)
        s.flush()
    _rechain(drop_last_two)
    assert main(["audit", "verify"]) == 0
    assert main(["audit", "verify", "--checkpoint", str(folder)]) == 1
    assert "truncated" in capsys.readouterr().out


def test_the_log_growing_past_a_checkpoint_still_extends_it_and_a_forged_checkpoint_is_refused(tmp_path,
                                                                                              capsys) -> None:
    folder = _history(tmp_path)
    approve(record(variant(4)))  # more entries after the checkpoint
    assert main(["audit", "verify", "--checkpoint", str(folder)]) == 0
    (cp,) = folder.glob("checkpoint-*.json")
    env = json.loads(cp.read_text())
    env["payload"] = env["payload"][:-4] + ("AAAA" if not env["payload"].endswith("AAAA") else "BBBB")
    cp.write_text(json.dumps(env))
    capsys.readouterr()
    assert main(["audit", "verify", "--checkpoint", str(cp)]) == 1
    assert "not a valid checkpoint" in capsys.readouterr().out


def test_a_checkpoint_signs_the_rfc_6962_root_of_the_log_it_pins() -> None:
    from hms.attest import checkpoints, merkle
    from hms.registry.db import session_scope

    with session_scope() as s:
        from hms.registry import audit

        for i in range(5):
            audit.append(s, actor="ops", action="test.entry", subject=f"s{i}", details={"i": i})
    with session_scope() as s:
        cp = checkpoints.publish(s)
        assert cp.size >= 5 and cp.root == merkle.root(checkpoints.leaves(s, cp.size)).hex()
        assert checkpoints.read(cp.path).root == cp.root

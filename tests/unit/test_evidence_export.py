"""``hms evidence export`` then ``hms evidence verify`` with no database at all (issue 15, item 5)."""

from __future__ import annotations

import base64
import json

from hms.attest import envelopes, keys
from hms.cli import main
from hms.registry import db
from tests.deploy_helpers import pin_config, promote_all, ready, record, variant


def _exported(tmp_path):
    keys.reset()
    envelopes.reset()
    cfg = pin_config()
    b = ready(record(variant(3)), cfg)
    promote_all(b, cfg)
    assert main(["audit", "checkpoint"]) == 0
    out = tmp_path / "evidence.json"
    assert main(["evidence", "export", b.sha256[:12], "--out", str(out)]) == 0
    return b, out


def _offline(monkeypatch, tmp_path):
    """No registry reachable: an empty home and a database URL nothing listens on."""
    monkeypatch.setenv("HMS_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("HMS_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    db.reset_engines()
    keys.reset()
    envelopes.reset()


def test_the_evidence_of_a_version_in_force_verifies_offline(tmp_path, monkeypatch, capsys) -> None:
    _, out = _exported(tmp_path)
    _offline(monkeypatch, tmp_path)
    capsys.readouterr()
    assert main(["evidence", "verify", str(out)]) == 0
    text = capsys.readouterr().out
    assert "approved by alice (legal), bob (budget)" in text and "prod from" in text
    assert "statements verified offline" in text and "1 signed audit checkpoints" in text


def test_a_tampered_statement_or_bundle_in_the_evidence_file_fails_offline(tmp_path, monkeypatch, capsys) -> None:
    _, out = _exported(tmp_path)
    data = json.loads(out.read_text())
    env = json.loads(data["statements"][0])
    stmt = json.loads(base64.b64decode(env["payload"]))
    stmt["predicate"]["reviewer"] = "carol"
    env["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
    data["statements"][0] = json.dumps(env)
    out.write_text(json.dumps(data))
    _offline(monkeypatch, tmp_path)
    capsys.readouterr()
    assert main(["evidence", "verify", str(out)]) == 1
    assert "the signature does not verify" in capsys.readouterr().out
    data["bundle"]["base64"] = base64.b64encode(b"other bytes").decode()
    out.write_text(json.dumps(data))
    assert main(["evidence", "verify", str(out)]) == 1
    assert "do not hash to" in capsys.readouterr().out


def test_the_versions_audit_entries_are_proved_in_the_signed_log_and_an_edited_one_is_not(
        tmp_path, monkeypatch, capsys) -> None:
    b, out = _exported(tmp_path)
    promote_all(ready(record(variant(4)), pin_config()), pin_config())  # the log grows; a second checkpoint
    assert main(["audit", "checkpoint"]) == 0
    assert main(["evidence", "export", b.sha256[:12], "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["audit"]["entries"] and len(data["audit"]["consistency"]) == 1
    _offline(monkeypatch, tmp_path)
    capsys.readouterr()
    assert main(["evidence", "verify", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{len(data['audit']['entries'])} audit entries proved in the log" in text
    assert "1 checkpoint consistency proofs" in text
    edited = json.loads(out.read_text())
    edited["audit"]["entries"][0]["actor"] = "mallory"
    out.write_text(json.dumps(edited))
    assert main(["evidence", "verify", str(out)]) == 1
    assert "is not in the log the checkpoint" in capsys.readouterr().out
    rewritten = json.loads(json.dumps(data))
    rewritten["audit"]["consistency"][0]["proof"][0] = "00" * 32
    out.write_text(json.dumps(rewritten))
    assert main(["evidence", "verify", str(out)]) == 1
    assert "does not extend checkpoint" in capsys.readouterr().out

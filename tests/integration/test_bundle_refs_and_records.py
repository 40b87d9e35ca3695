"""Pipeline steps name bundles by hash and keep their results in the registry (what clerks read)."""

from __future__ import annotations

from hms.cli import main
from hms.registry import store
from hms.registry.db import session_scope
from tests.conftest import WILDFIRE


def _pack(tmp_path, capsys) -> str:
    assert main(["policy", "pack", str(WILDFIRE), "--out", str(tmp_path / "pkg.tgz")]) == 0
    return capsys.readouterr().out.split("sha256:")[1].strip()


def test_test_and_scan_accept_a_registry_hash_and_record_their_results(tmp_path, capsys):
    sha = _pack(tmp_path, capsys)
    assert main(["policy", "test", f"sha256:{sha}", "--record", "--run-id", "r1"]) == 0
    assert main(["scan", f"sha256:{sha}", "--record", "--run-id", "r1"]) == 0
    with session_scope() as s:
        checks = store.latest_checks(s, sha)
    assert {k: (c.ok, c.run_id) for k, c in checks.items()} == {"test": (True, "r1"), "scan": (True, "r1")}


def test_an_unknown_hash_is_bad_input_and_records_nothing(tmp_path, capsys):
    _pack(tmp_path, capsys)
    assert main(["policy", "test", "sha256:" + "0" * 64, "--record"]) == 2
    assert "no bundle" in capsys.readouterr().err

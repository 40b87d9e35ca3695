"""The registry: schema migrations, bundle records, and an audit chain that detects every kind of tampering."""

from __future__ import annotations

import multiprocessing
import os

import pytest
from sqlalchemy import delete, select, text, update

from hms import bundle, protocol
from hms.cli import main
from hms.errors import BadInput
from hms.registry import audit, db, migrate, store
from hms.registry.models import AuditEntry, Bundle
from tests.conftest import CHIP, WILDFIRE
from tests.fixtures_registry import direct_writer, pin_test_settings

PIN_POLICY = False  # these tests count and number the audit chain's entries from the first


def _record(s, path=WILDFIRE, **over):
    proto = protocol.load(path)
    raw = bundle.build(proto)
    args = dict(
        sha256=bundle.sha256_hex(raw),
        protocol_id=proto.id,
        version=proto.version,
        content=raw,
        manifest=bundle.read_bytes(raw).manifest,
        created_by="tester",
    )
    args.update(over)
    return store.record_bundle(s, **args)


def test_db_upgrade_is_idempotent_and_reports_the_redacted_url(registry_url, capsys):
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "upgrade"]) == 0
    out = capsys.readouterr().out
    assert "registry at head" in out
    assert db.upgrade() == migrate.HEAD


def test_database_url_hides_the_password(monkeypatch):
    monkeypatch.setenv("HMS_DATABASE_URL", "postgresql+psycopg2://hms:s3cret@db:5432/hms")
    assert "s3cret" not in db.database_url(redacted=True)
    assert "***" in db.database_url(redacted=True)


def test_recording_the_same_bundle_twice_keeps_one_row_and_one_audit_entry(registry_url):
    with db.session_scope() as s:
        row, created = _record(s)
        again, created_again = _record(s)
    assert created and not created_again and row.sha256 == again.sha256
    with db.session_scope() as s:
        assert s.scalar(select(text("count(*)")).select_from(Bundle)) == 1
        assert [e.action for e in audit.entries(s)] == ["bundle.recorded"]


def test_a_different_bundle_under_an_existing_version_is_refused(registry_url):
    with db.session_scope() as s:
        _record(s)
    with pytest.raises(BadInput, match="needs a higher metadata.version") as refused, db.session_scope() as s:
        _record(s, sha256="f" * 64)
    # How to go on from the Airflow UI, where a plain Trigger of a changed file ends here (issue 18, item 4).
    assert refused.value.where == "metadata.version"
    assert "pick it in the Airflow trigger form's 'bundle' field" in refused.value.message
    assert "--bundle wildfire-aid-2024@" in refused.value.message
    assert "raise its metadata.version" in refused.value.message
    with db.session_scope() as s:
        assert len(store.find_bundles(s, "wildfire-aid-2024")) == 1


def test_pack_records_the_bundle_and_a_failed_pack_records_nothing(registry_url, tmp_path, capsys):
    pin_test_settings()  # a shared registry's gates (and pack) need an applied policy
    bad = tmp_path / "bad.yml"
    bad.write_text(WILDFIRE.read_text().replace("id: wildfire-aid-2024", "id: Wildfire_Aid"))
    with direct_writer():
        assert main(["policy", "pack", str(CHIP), "--out", str(tmp_path / "chip.tgz")]) == 0
        assert main(["policy", "pack", str(bad), "--out", str(tmp_path / "bad.tgz")]) == 2
    assert not (tmp_path / "bad.tgz").exists()
    with db.session_scope() as s:
        assert store.protocol_ids(s) == ["chip-income-cap"]
        assert audit.verify(s).ok


def _chain(n: int) -> None:
    with db.session_scope() as s:
        for i in range(n):
            audit.append(s, actor="t", action="test.step", subject=f"s{i}", details={"i": i, "text": "é ☃"})


def test_an_intact_chain_verifies(registry_url, capsys):
    _chain(5)
    assert main(["audit", "verify"]) == 0
    assert "chain intact (5 entries)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("tamper", "bad_id", "reason"),
    [
        (lambda s: s.execute(update(AuditEntry).where(AuditEntry.id == 3).values(actor="mallory")), 3, "edited"),
        (lambda s: s.execute(delete(AuditEntry).where(AuditEntry.id == 2)), 3, "missing"),
        (lambda s: s.execute(delete(AuditEntry).where(AuditEntry.id == 5)), 5, "deleted"),
        (lambda s: s.execute(update(AuditEntry).where(AuditEntry.id == 4).values(details='{"i": 99}')), 4, "edited"),
    ],
    ids=["edited-actor", "deleted-middle", "deleted-tail", "edited-details"],
)
def test_tampering_is_detected_and_names_the_row(registry_url, tamper, bad_id, reason, capsys):
    _chain(5)
    with db.session_scope() as s:
        tamper(s)
    assert main(["audit", "verify"]) == 1
    out = capsys.readouterr().out
    assert f"row {bad_id}" in out and reason in out


def test_an_inserted_row_with_a_forged_hash_is_detected(registry_url):
    _chain(3)
    with db.session_scope() as s:
        first = s.get(AuditEntry, 1)
        s.execute(update(AuditEntry).where(AuditEntry.id == 2).values(prev_hash=first.prev_hash))
        r = audit.verify(s)
    assert not r.ok and r.first_bad_id == 2


def _append_many(url: str, n: int) -> None:
    os.environ["HMS_DATABASE_URL"] = url
    db.reset_engines()
    for i in range(n):
        with db.session_scope() as s:
            audit.append(s, actor=f"p{os.getpid()}", action="race", subject="x", details={"i": i})


def test_concurrent_writers_from_separate_processes_never_fork_the_chain(registry_url):
    _chain(1)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(registry_url, 25)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with db.session_scope() as s:
        r = audit.verify(s)
    assert r.ok and r.count == 76


def test_generations_count_changes_per_environment(registry_url):
    with db.session_scope() as s:
        assert store.generation(s, "prod") == 0
        store.bump_generation(s, "prod")
        store.bump_generation(s, "prod")
        store.bump_generation(s, "staging")
    with db.session_scope(read_only=True) as s:
        assert (store.generation(s, "prod"), store.generation(s, "staging")) == (2, 1)


def test_checks_are_kept_per_bundle_with_the_newest_of_each_kind(registry_url):
    with db.session_scope() as s:
        row, _ = _record(s)
        store.record_check(s, sha256=row.sha256, kind="test", ok=False, summary={"failed": 1}, actor="ci")
        store.record_check(s, sha256=row.sha256, kind="test", ok=True, summary={"failed": 0}, actor="ci")
        with pytest.raises(BadInput):
            store.record_check(s, sha256="0" * 64, kind="test", ok=True, summary={}, actor="ci")
    with db.session_scope() as s:
        latest = store.latest_checks(s, row.sha256)
    assert latest["test"].ok


def test_the_fast_head_check_names_alembics_own_head():
    from alembic.script import ScriptDirectory

    from hms.registry import migrate

    assert ScriptDirectory.from_config(migrate.alembic_config()).get_current_head() == migrate.HEAD

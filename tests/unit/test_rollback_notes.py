"""A rollback outside a run notes it on the Airflow run that had deployed what it undid (issue 18, item 5).

The note goes through Airflow's REST API (``PATCH …/dagRuns/{run_id}`` with ``note``; a real HTTP server on
127.0.0.1 here: tests.fake_airflow). Who is the authenticated principal; Airflow unreachable or not configured
leaves the rollback done and says so in one warning line.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from hms import actions, deployments
from hms.api import models
from hms.chaos import free_port
from hms.identity import Principal
from hms.registry.db import session_scope
from tests.deploy_helpers import config, promote_all, ready, record, variant
from tests.fake_airflow import fake_airflow

PID = "wildfire-aid-2024"
DAG = f"policy_{PID}"
DANA = Principal.person("dana")


def v3_live_by_a_run() -> None:
    cfg = config()
    v2 = record(variant(2))
    ready(v2, cfg)
    promote_all(v2, cfg, run_id="bundle-000000000002")
    v3 = record(variant(3))
    ready(v3, cfg)
    promote_all(v3, cfg, run_id="bundle-000000000003")


def rollback(reason: str | None = "wrong poverty table") -> models.RollbackOut:
    return actions.rollback(models.RollbackIn(protocol=PID, environment="prod", reason=reason), DANA)


def expected_note(out: models.RollbackOut, reason: str = ": wrong poverty table") -> str:
    when = datetime.fromisoformat(out.takes_effect_at).astimezone(ZoneInfo("America/New_York"))
    return f"prod rolled back to v2 at {when.isoformat(timespec='seconds')} (America/New_York) by dana{reason}"


def test_a_rollback_from_a_shell_notes_it_on_the_run_that_deployed_the_undone_version(registry_url, monkeypatch):
    v3_live_by_a_run()
    with fake_airflow() as fake:
        fake.add_run(DAG, "bundle-000000000003", "success")
        fake.runs[DAG]["bundle-000000000003"]["note"] = "approved by alice and bob"
        monkeypatch.setenv("HMS_AIRFLOW_URL", fake.url)
        monkeypatch.setenv("HMS_AIRFLOW_PASSWORD", fake.password)
        out = rollback()
        note = fake.runs[DAG]["bundle-000000000003"]["note"]
    assert out.version == 2 and out.state == "live"
    assert note == "approved by alice and bob\n" + expected_note(out)  # an earlier note stays above it
    assert out.lines[-1] == f"[rollback] 📝 note on Airflow run {DAG}/bundle-000000000003: {expected_note(out)}"
    patches = [(m, p) for m, p, _ in fake.requests if m == "PATCH"]
    assert patches == [("PATCH", f"/api/v2/dags/{DAG}/dagRuns/bundle-000000000003?update_mask=note")]


def test_without_a_reason_the_note_says_none_was_given(registry_url, monkeypatch):
    v3_live_by_a_run()
    with fake_airflow() as fake:
        fake.add_run(DAG, "bundle-000000000003", "success")
        monkeypatch.setenv("HMS_AIRFLOW_URL", fake.url)
        monkeypatch.setenv("HMS_AIRFLOW_PASSWORD", fake.password)
        out = rollback(reason=None)
        assert fake.runs[DAG]["bundle-000000000003"]["note"] == expected_note(out, " (no reason given)")


def test_with_airflow_unreachable_the_rollback_is_done_and_one_line_says_the_run_was_not_annotated(
    registry_url, monkeypatch
):
    v3_live_by_a_run()
    monkeypatch.setenv("HMS_AIRFLOW_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    out = rollback()
    with session_scope() as s:
        assert deployments.in_force(s, "prod", PID).version == 2
    warnings = [line for line in out.lines if "⚠" in line]
    assert len(warnings) == 1 and warnings == out.lines[-1:]
    assert warnings[0].startswith(f"[rollback] ⚠ Airflow run {DAG}/bundle-000000000003 was not annotated: ")
    assert "unreachable" in warnings[0]


def test_with_airflow_not_configured_the_rollback_is_done_and_says_so(registry_url):
    v3_live_by_a_run()
    out = rollback()
    assert out.version == 2
    assert out.lines[-1] == (
        f"[rollback] ⚠ Airflow run {DAG}/bundle-000000000003 was not annotated: HMS_AIRFLOW_URL is not set"
    )


def test_a_run_airflow_does_not_know_is_a_warning_too(registry_url, monkeypatch):
    v3_live_by_a_run()
    with fake_airflow() as fake:  # no such run in Airflow (deployed with hms promote --run-id, say)
        monkeypatch.setenv("HMS_AIRFLOW_URL", fake.url)
        monkeypatch.setenv("HMS_AIRFLOW_PASSWORD", fake.password)
        out = rollback()
    assert out.version == 2
    assert out.lines[-1].endswith(f"was not annotated: Airflow at {fake.url} has no such run")


def test_a_refused_login_is_a_warning_naming_the_user(registry_url, monkeypatch):
    v3_live_by_a_run()
    with fake_airflow() as fake:
        fake.add_run(DAG, "bundle-000000000003", "success")
        monkeypatch.setenv("HMS_AIRFLOW_URL", fake.url)
        monkeypatch.setenv("HMS_AIRFLOW_PASSWORD", "wrong")
        out = rollback()
        assert fake.runs[DAG]["bundle-000000000003"]["note"] is None
    assert out.version == 2
    assert "was not annotated" in out.lines[-1] and "login as 'admin' refused (401)" in out.lines[-1]


def test_a_deployment_made_without_a_run_gets_no_note(registry_url, monkeypatch):
    cfg = config()
    v2 = record(variant(2))
    ready(v2, cfg)
    promote_all(v2, cfg)
    v3 = record(variant(3))
    ready(v3, cfg)
    promote_all(v3, cfg)  # by hand: no run id
    out = rollback()
    assert out.version == 2 and not any("Airflow run" in line for line in out.lines)


def test_undoing_a_whole_run_from_a_shell_notes_every_environment_on_that_run(registry_url, monkeypatch):
    v3_live_by_a_run()
    with fake_airflow() as fake:
        fake.add_run(DAG, "bundle-000000000003", "success")
        monkeypatch.setenv("HMS_AIRFLOW_URL", fake.url)
        monkeypatch.setenv("HMS_AIRFLOW_PASSWORD", fake.password)
        req = models.RunRollbackIn(run="bundle-000000000003", reason="wrong poverty table")
        out = actions.rollback_run(req, Principal.person("erin"))
        note = fake.runs[DAG]["bundle-000000000003"]["note"]
    assert note.startswith(
        "staging rolled back to v2; preprod rolled back to v2; prod rolled back to v2 at "
    ) and note.endswith(" (America/New_York) by erin: wrong poverty table"), note
    assert out.lines[-1] == f"[rollback] 📝 note on Airflow run {DAG}/bundle-000000000003: {note}"


def test_the_pipeline_undoing_its_own_run_writes_no_note_and_no_warning(registry_url):
    v3_live_by_a_run()
    out = actions.rollback_run(
        models.RunRollbackIn(run="bundle-000000000003"), Principal.pipeline("bundle-000000000003")
    )
    assert len(out.rolled_back) == 3 and not any("Airflow run" in line for line in out.lines)


def test_a_runs_note_names_its_environments_in_the_pipelines_order_whatever_order_the_rows_came_in():
    """PostgreSQL returns a run's rows in no set order (it failed the shifted tier once: preprod; prod; staging)."""
    from hms import clock, run_notes
    from hms.registry.models import Deployment

    def row(env: str, version: int, i: int) -> Deployment:
        return Deployment(id=i, environment=env, protocol_id="wildfire-aid-2024", bundle_sha256=f"{version}" * 64,
                          version=version, state="rolled_back", run_id="bundle-000000000003")

    ended = [row("prod", 3, 3), row("staging", 3, 1), row("preprod", 3, 2)]
    serving = {env: row(env, 2, 10 + i) for i, env in enumerate(("staging", "preprod", "prod"))}
    (note,) = run_notes.rollback_notes(ended, in_force=serving, by="erin", reason="why", at=clock.now(),
                                       tz="America/New_York", order=("staging", "preprod", "prod"))
    assert note.text.startswith("staging rolled back to v2; preprod rolled back to v2; prod rolled back to v2 at ")

"""Protocols whose inputs no population has pass the pipeline's CLI steps, and say what was invented.

The three protocols in tests/data/protocols read inputs the synthetic generator does not make
(``has_elderly_member``, ``county_code``, ``children_under_5``, ``employment_status``,
``monthly_energy_cost``, ``electric_heating``). Each goes through ``hms policy pack``, ``hms policy
test`` (cases through both backends, then the simulation), ``hms scan --rules privacy,ethics,legal``
and ``hms policy simulate`` (human, ``--json``, ``--report``), and the clerk's card shows the
synthesized columns from the recorded test result.

The legal scan refuses an effective time in the past, so each protocol is rewritten with an
effective time computed from the clock when the test runs (a Wednesday noon at least 30 days
ahead: outside the Sunday maintenance window and the year-end freeze); nothing depends on today.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import yaml
from fastapi import Request
from fastapi.testclient import TestClient

from hms.cli import main
from tests.conftest import ROOT
from tests.dated_protocols import future_effective_at

DATA = ROOT / "tests" / "data" / "protocols"
SYNTHESIZED = {
    "elderly-supplement": ["county_code", "has_elderly_member"],
    "childcare-subsidy": ["children_under_5", "employment_status"],
    "utility-assistance": ["electric_heating", "monthly_energy_cost"],
}


def protocol_file(tmp_path: Path, pid: str) -> Path:
    data = yaml.safe_load((DATA / f"{pid}.yml").read_text())
    data["metadata"]["effective_at"] = future_effective_at()
    data["budget"]["cap"] = float(data["budget"]["cap"])  # PyYAML 1.1 reads 8.0e8 as a string
    out = tmp_path / f"{pid}.json"
    out.write_text(json.dumps(data))
    return out


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(params=sorted(SYNTHESIZED))
def packed(request, tmp_path, capsys) -> tuple[str, str]:
    pid = request.param
    pkg = tmp_path / f"{pid}.tgz"
    rc, out, err = run(capsys, "policy", "pack", str(protocol_file(tmp_path, pid)), "--out", str(pkg))
    assert rc == 0, err
    assert out.startswith(f"{pkg} sha256:")
    return pid, str(pkg)


def test_policy_test_passes_both_backends_and_names_the_synthesized_columns(packed, capsys):
    pid, pkg = packed
    rc, out, err = run(capsys, "policy", "test", pkg)
    assert rc == 0, out + err
    assert f"[test] ✅ 4 tests ({pid} v1, both backends)" in out
    assert "[simulate] ⚠️ synthesized data: 2 columns the population lacks were drawn" in out
    for name in SYNTHESIZED[pid]:
        assert f"[simulate]   synthesized {name}: " in out
    assert "[simulate] ✅ cost $" in out


def test_policy_test_json_carries_the_synthesized_columns_in_its_simulation(packed, capsys):
    pid, pkg = packed
    rc, out, _ = run(capsys, "policy", "test", pkg, "--json")
    sim = json.loads(out)["simulation"]
    assert rc == 0 and sim["ok"] is True
    assert [c["name"] for c in sim["synthesized_columns"]] == SYNTHESIZED[pid]
    assert all(c["how"] for c in sim["synthesized_columns"])


def test_scan_with_privacy_ethics_and_legal_is_clean(packed, capsys):
    pid, pkg = packed
    rc, out, err = run(capsys, "scan", pkg, "--rules", "privacy,ethics,legal")
    assert rc == 0, out + err
    assert out.startswith(f"[scan] privacy(0) ethics(0) legal(0) ✅ {pid} v1")


def test_simulate_names_each_synthesized_column_and_how_in_human_json_and_report(packed, tmp_path, capsys):
    pid, pkg = packed
    rc, out, _ = run(capsys, "policy", "simulate", pkg)
    assert rc == 0, out
    for name in SYNTHESIZED[pid]:
        assert f"synthesized {name}: " in out
    rc, out, _ = run(capsys, "policy", "simulate", pkg, "--json", "--report", str(tmp_path / "r.html"))
    payload = json.loads(out)
    assert rc == 0 and [c["name"] for c in payload["synthesized_columns"]] == SYNTHESIZED[pid]
    html = (tmp_path / "r.html").read_text()
    assert "<h2>Synthesized columns</h2>" in html and 'badge warn">synthesized data' in html
    for c in payload["synthesized_columns"]:
        assert f"<code>{c['name']}</code>" in html


def test_a_catalog_population_synthesizes_too(tmp_path, capsys):
    pkg = tmp_path / "e.tgz"
    assert main(["policy", "pack", str(protocol_file(tmp_path, "elderly-supplement")), "--out", str(pkg)]) == 0
    capsys.readouterr()
    rc, out, _ = run(capsys, "policy", "simulate", str(pkg), "--json")  # budget.population: wildfire-affected
    payload = json.loads(out)
    assert rc == 0 and payload["population"]["source"].startswith("wildfire-affected (synthetic:")
    assert [c["name"] for c in payload["synthesized_columns"]] == ["county_code", "has_elderly_member"]


def test_the_same_seed_gives_the_same_budget_and_another_seed_another(tmp_path, capsys):
    pkg = tmp_path / "u.tgz"
    assert main(["policy", "pack", str(protocol_file(tmp_path, "utility-assistance")), "--out", str(pkg)]) == 0
    capsys.readouterr()

    def cost(source: str) -> int:
        assert main(["policy", "simulate", str(pkg), "--population", source, "--json"]) == 0
        return json.loads(capsys.readouterr().out)["cost_cents"]

    assert cost("synthetic:20000:5") == cost("synthetic:20000:5") != cost("synthetic:20000:6")


def test_the_clerks_card_shows_the_synthesized_columns_from_the_recorded_test(tmp_path, capsys):
    from hms import bundle
    from hms.web import WebError, create_app

    src = protocol_file(tmp_path, "childcare-subsidy")
    data = json.loads(src.read_text())
    data["budget"]["population"] = "synthetic:3000:1"  # small, and its own: a recorded test uses no other
    src.write_text(json.dumps(data))
    pkg = tmp_path / "c.tgz"
    assert main(["policy", "pack", str(src), "--out", str(pkg)]) == 0
    sha = bundle.read(pkg).sha256
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["policy", "test", f"sha256:{sha}", "--record"]) == 0

    def identify(request: Request) -> str:
        user = request.headers.get("x-user")
        if not user:
            raise WebError(401, "no user", field="x-user")
        return user

    html = TestClient(create_app(identify, login_url="/login")).get("/reviews", headers={"x-user": "bob"}).text
    card = html[html.index(f'data-sha="{sha}"'):]
    assert 'class="check synthesized"' in card
    assert "<code>children_under_5</code>: integer, uniform over [0, 6]" in card
    assert "<code>employment_status</code>: one of" in card

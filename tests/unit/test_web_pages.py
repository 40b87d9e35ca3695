"""What the page templates render (hms.web.pages + templates/web): escaping, times, plain-words changes, cost.

The app is served by FastAPI's TestClient with the header identity of test_web_reviews; the registry is this
test's own SQLite (tests/conftest.py). Every instant is built from the clock (``hms.clock``), never a date.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from hms import charts, clock, deployments, protocol, protocol_diff
from hms.cost_baseline import CostComparison
from hms.effective_time import note
from hms.pipeline_config import load_pipeline_config
from hms.registry.db import session_scope
from hms.web import create_app, pages
from tests.conftest import ROOT, WILDFIRE
from tests.deploy_helpers import record, record_checks
from tests.unit.test_web_pages_browser import record_test, wildfire
from tests.unit.test_web_reviews import as_, identify

NY = ZoneInfo("America/New_York")
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app(identify))


def _prod_and_waiting(title: str | None = None, comment: str = "") -> str:
    """wildfire v2 live everywhere (with its simulation), v3 pushed, v4 checked and waiting: v4's hash."""
    cfg = load_pipeline_config()
    prod = record(wildfire(2, -timedelta(days=10), per_member=800, max_payment=4000))
    record_test(prod)
    record_checks(prod, ("scan", "chaos"))
    with session_scope() as s:
        for user, role in (("alice", "legal"), ("bob", "budget")):
            deployments.record_review(s, prod, user=user, role=role, decision="approve", comment="", config=cfg)
        for env in cfg.environment_names:
            deployments.deploy(s, prod, env, activate_at=None, actor="ops", config=cfg, run_id="manual__v2")
    record(wildfire(3, timedelta(days=20), per_member=1000))
    v4 = wildfire(4, timedelta(days=30), per_member=1100, max_payment=5000)
    if title is not None:
        data = copy.deepcopy(v4.data)
        data["metadata"]["title"] = title
        v4 = protocol.from_data(data, "titled v4")
    b = record(v4)
    record_test(b, baseline=prod)
    record_checks(b, ("scan",))
    if comment:
        with session_scope() as s:
            deployments.record_review(s, b, user="alice", role="legal", decision="approve", comment=comment, config=cfg)
    return b.sha256


def _text(html: str) -> str:
    """The page's text as a reader sees it: tags dropped (attributes with them)."""
    return re.sub(r"<[^>]+>", "", html)


# ---- escaping --------------------------------------------------------------------------------------


def test_a_script_in_a_clerks_comment_or_a_protocols_title_stays_text_on_every_page(client):
    sha = _prod_and_waiting(title=HOSTILE, comment=HOSTILE)
    for path in ("/reviews", "/ops", f"/reports/{sha}"):
        html = client.get(path, headers=as_("bob")).text
        assert HOSTILE not in html and "<img" not in html, path
        assert [s for s in re.findall(r"<script[^>]*>", html) if "static/hms.js" not in s] == [], path
    card = client.get("/reviews", headers=as_("bob")).text
    shown = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
    assert f"<h2>{shown} — " in card and f'<q class="comment">{shown}</q>' in card


def test_the_error_page_escapes_the_message_and_finds_its_stylesheet_one_level_down(client):
    r = client.get("/reports/" + "ab" * 32, headers={**as_("bob"), "accept": "text/html"})
    assert r.status_code == 404 and "<h1>404</h1>" in r.text
    assert 'href="../static/base.css"' in r.text and "sha256:abab" in r.text


def test_an_error_pages_instants_are_in_the_pipelines_zone_with_utc_on_hover():
    at = (clock.now() + timedelta(days=40)).replace(second=0, microsecond=0).astimezone(UTC)
    html = pages.error_page(409, f"prod already activates v4 at {at.isoformat()}", "env", None, tz=NY)
    m = pages.moment(at, NY)
    assert 'data-timezone="America/New_York"' in html and f"at {at.isoformat()}" not in html
    assert f'<time datetime="{m.iso}" title="{m.utc}">{m.local}</time>' in html and m.local.endswith(("EST", "EDT"))


# ---- times -----------------------------------------------------------------------------------------


def test_a_moment_is_shown_in_the_pipelines_zone_with_the_zone_named_and_utc_on_hover():
    at = (clock.now() + timedelta(days=40)).replace(second=0, microsecond=0)
    m = pages.moment(at, NY)
    assert m.local == at.astimezone(NY).strftime("%Y-%m-%d %H:%M ") + at.astimezone(NY).tzname()
    assert m.local.endswith((" EST", " EDT")) and m.utc == at.strftime("%Y-%m-%d %H:%M UTC")
    assert m.iso == at.isoformat()


def test_the_times_inside_a_late_activation_note_become_moments_of_the_same_instants():
    effective = (clock.now() - timedelta(days=3)).replace(microsecond=0)
    live = effective + timedelta(days=2, hours=5)
    sentence = note(live, effective, NY)
    parts = pages.timed(sentence, NY)
    moments = [p for p in parts if isinstance(p, pages.Moment)]
    assert [m.iso for m in moments] == [effective.isoformat(), live.isoformat()]
    assert "".join(p if isinstance(p, str) else p.local for p in parts).startswith("effective date ")


def test_every_time_on_the_cards_and_the_deploys_page_is_a_time_element_never_a_bare_iso_instant(client):
    sha = _prod_and_waiting()
    for path in ("/reviews", "/ops"):
        html = client.get(path, headers=as_("dana")).text
        stamps = re.findall(r'<time datetime="([^"]+)" title="([^"]+)">([^<]+)</time>', html)
        assert stamps, path
        for iso, utc, local in stamps:
            assert iso.endswith("+00:00") and utc.endswith(" UTC") and local.endswith((" EST", " EDT")), stamps
        shown = re.sub(r"<details.*?</details>", "", html, flags=re.S)  # the raw YAML is the file's own text
        assert not re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", _text(shown)), path  # no ISO instant shown
    assert sha in client.get("/reviews", headers=as_("bob")).text


# ---- the changes, in plain words ---------------------------------------------------------------------


def test_the_change_list_is_in_plain_words_grouped_parameters_rules_inputs_tests_then_the_rest():
    old = protocol.load(WILDFIRE)
    data = copy.deepcopy(old.data)
    data["parameters"]["per_member"] = 1100.0  # a float that is a whole number: no "1100.0" noise
    data["rules"]["amount"] = "min(max_payment, per_member * household_size) if eligible else 0.0"
    data["inputs"]["household_size"]["maximum"] = 25
    data["tests"][0]["expect"]["amount"] = 4400
    data["metadata"]["version"] = old.version + 1
    data["metadata"]["effective_at"] = (clock.now() + timedelta(days=30)).isoformat()
    new = protocol.from_data(data, "edited")
    cl = pages.change_list("prod", "Against prod (v3)", protocol_diff.diff(old, new), "none", NY)
    assert [g.section for g in cl.groups] == ["parameters", "rules", "inputs", "tests", "other"]
    assert [g.label for g in cl.groups] == ["Parameters", "Rules", "Inputs", "Tests", "Everything else"]
    lines = {(g.section, line.what): line for g in cl.groups for line in g.lines}
    assert (lines["parameters", "per_member"].old, lines["parameters", "per_member"].new) == ("1000", "1100")
    assert lines["rules", "rule amount"].new.endswith("else 0.0")
    assert (lines["inputs", "household_size.maximum"].old, lines["inputs", "household_size.maximum"].new) == (
        "20",
        "25",
    )
    expect = lines["tests", "test case 'family of four in a declared county' expects"]
    assert (expect.old, expect.new) == ("{eligible: true, amount: 4000}", "{eligible: true, amount: 4400}")
    eff = lines["other", "metadata.effective_at"].new  # a time, shown like every other time
    assert isinstance(eff, pages.Moment) and eff.local.endswith((" EST", " EDT"))
    assert cl.empty is None and cl.count == len(lines)
    none = pages.change_list("prod", "Against prod (v3)", [], "Prod serves this very bundle.", NY)
    assert none.groups == [] and none.empty == "Prod serves this very bundle." and none.count == 0


def test_the_card_shows_the_changes_against_prod_and_against_the_previous_version_above_everything_else(client):
    sha = _prod_and_waiting()
    html = client.get("/reviews", headers=as_("bob")).text
    card = html[html.index(f'<section class="bundle" data-sha="{sha}"') :]
    vs_prod = card[card.index('data-against="prod"') : card.index('data-against="previous"')]
    vs_prev = card[card.index('data-against="previous"') : card.index('class="cost-sentence"')]
    arrow = '<span class="what">{}</span>: <span class="old">{}</span> → <span class="new">{}</span>'
    assert "Against prod (v2)" in vs_prod
    assert arrow.format("per_member", 800, 1100) in vs_prod and arrow.format("max_payment", 4000, 5000) in vs_prod
    assert "Against the previous version (v3)" in vs_prev and arrow.format("per_member", 1000, 1100) in vs_prev
    assert "max_payment" not in vs_prev
    assert card.index("What changes") < card.index("Cost") < card.index("Approvals so far") < card.index("Checks")


# ---- the cost against prod's, and the chart's axis ------------------------------------------------------


def test_the_cost_sentence_names_prods_cost_this_cost_and_the_delta():
    c = CostComparison("USD", 110_000_000_00, 1_000_000_000_00, 100_000_000_00, 2, True)
    view = pages.cost_view(c, 3)
    assert view.sentence == "prod (v2) costs $100,000,000; this costs $110,000,000 per year, +$10,000,000 (+10.0 %)"
    assert not view.two_runs
    nothing = pages.cost_view(CostComparison("USD", 5_00, None), 1)
    assert nothing.sentence == "nothing in prod to compare with; this costs $5 per year"


@pytest.mark.parametrize(
    ("cap", "cost", "axis"),
    [(1e9, 1.1e6, 1.2e9), (1e9, 1.5e9, 2e9), (None, 3e6, 4e6)],
    ids=["cap-1B", "over-the-cap", "no-cap"],
)
def test_the_cost_charts_axis_fits_the_cap_and_the_costs_not_twice_the_cap(cap, cost, axis):
    chart = charts.cost_chart(
        [charts.CostBar("prod v2", 0.9 * cost * 100, charts.GREY), charts.CostBar("v3", cost * 100, charts.GREEN)],
        cap * 100 if cap else None,
        "USD",
    )
    assert chart.axis_max == pytest.approx(axis * 100)
    ticks = [s.text for s in chart.shapes if isinstance(s, charts.Text) and s.cls == "tick"]
    assert ticks[-1] == charts.money_axis("USD")(axis)
    widths = [s.width for s in chart.shapes if isinstance(s, charts.Rect)]
    assert max(widths) <= 1080 - 110 - 64  # every bar inside the plot


def test_the_report_link_opens_in_a_new_tab_and_the_served_report_uses_the_apps_files(client):
    sha = _prod_and_waiting()
    html = client.get("/reviews", headers=as_("bob")).text
    assert f'<a class="report" href="reports/{sha}" target="_blank" rel="noopener">full report</a>' in html
    report = client.get(f"/reports/{sha}", headers=as_("bob"))
    assert '<link rel="stylesheet" href="../static/base.css">' in report.text and "<style>" not in report.text
    assert "the baseline (v2) costs $" in report.text


# ---- one name per page, static files and the CSP ------------------------------------------------------


def _sidebar_entries() -> list[dict[str, str]]:
    """The plugin's ``external_views`` as written (read with ast: importing it would start Airflow's plugins)."""
    import ast

    tree = ast.parse((ROOT / "plugins" / "hms_operators" / "plugin.py").read_text())
    views = next(
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "external_views"
    )
    out = []
    for d in views.elts:  # type: ignore[attr-defined]
        entry = {}
        for k, v in zip(d.keys, d.values, strict=True):
            text = (
                v.value
                if isinstance(v, ast.Constant)
                else "".join(x.value if isinstance(x, ast.Constant) else "{}" for x in getattr(v, "values", []))
            )
            entry[k.value] = text
        out.append(entry)
    return out


def test_each_page_has_one_name_in_the_sidebar_the_title_and_the_heading(client):
    entries = {e["href"].rsplit("/", 1)[-1]: e for e in _sidebar_entries()}
    for path, key in (("/reviews", "reviews"), ("/ops", "ops")):
        name = pages.PAGE_NAMES[key]
        html = client.get(path, headers=as_("alice")).text
        assert f"<title>{name}</title>" in html and f"<h1>{name}</h1>" in html
        assert entries[key]["name"] == name
    icons = [e[k].rsplit("/", 1)[-1] for e in entries.values() for k in ("icon", "icon_dark_mode")]
    assert len(icons) == len(set(icons)) == 4 and set(icons) <= set(pages.STATIC)


def test_the_static_files_are_a_fixed_list_served_with_their_types_under_a_csp_without_inline_code(client):
    for name, (_, _, media_type) in pages.STATIC.items():
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(media_type), name
    assert client.get("/static/..%2Fapp.py").status_code == 404
    assert client.get("/static/pages.py").status_code == 404
    csp = client.get("/static/hms.css").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe-inline" not in csp
    js = client.get("/static/hms.js").text
    assert 'classList.contains("dark")' in js and "prefers-color-scheme" in js and 'getItem("theme")' in js


def test_a_move_in_the_deploys_history_reads_from_to_who_and_why_with_both_times_as_time_elements(client):
    from tests.unit.test_web_reviews import WHY, _monday_noon, _staged, bundle_of

    b = bundle_of()
    first = _monday_noon()
    _staged(b, first)
    later = first + timedelta(days=7)
    r = client.post(
        f"/api/activations/{b.sha256}/move", headers=as_("dana"), json={"effective_at": later.isoformat(), **WHY}
    )
    assert r.status_code == 200, r.json()
    html = client.get("/ops", headers=as_("dana")).text
    line = re.search(
        r'moved <span class="note move">\(moved from (<time[^>]*>[^<]*</time>) to (<time[^>]*>[^<]*</time>)'
        r" by dana: gazette date moved\)</span>",
        html,
    )
    assert line, html[html.index("Last deployments") :][:3000]
    assert f'datetime="{first.isoformat()}"' in line.group(1) and f'datetime="{later.isoformat()}"' in line.group(2)


# ---- who gains and who loses ---------------------------------------------------------------------------


def test_the_card_shows_who_gains_and_who_loses_against_prod_by_decile(client):
    sha = _prod_and_waiting()
    html = client.get("/reviews", headers=as_("bob")).text
    card = html[html.index(f'<section class="bundle" data-sha="{sha}"') :]
    section = card[card.index('class="distribution"') : card.index("Approvals so far")]
    assert "Against wildfire-aid-2024 v2" in section and "newly eligible" in section and " gain $" in section
    assert 'aria-label="baseline winners and losers"' in section and 'aria-label="average change by decile"' in section
    api = client.get("/api/reviews", headers=as_("bob")).json()
    dist = next(c for c in api["pending"] if c["sha256"] == sha)["distribution"]
    assert dist["winners"] > 0 and dist["losers"] == 0 and dist["gains_cents"] == dist["cost_delta_cents"] > 0
    assert len(dist["by_income_decile"]) == 10 and dist["by_income_decile"][0]["average_change"] >= 0

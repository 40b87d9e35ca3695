"""The clerk's card shows the recorded replay beside the simulation: what the bundle would do to real decisions."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

from fastapi.testclient import TestClient

from hms import clock
from hms.registry import store
from hms.registry.db import session_scope
from hms.replay import replay
from hms.web import create_app
from tests.unit.test_replay import candidate, serve_and_decide
from tests.unit.test_web_reviews import as_, identify


def _text(html: str) -> str:
    """What a reader sees: tags dropped, entities read, each list item on its own."""
    return unescape(re.sub(r"\s+", " ", re.sub(r"</li>", " ", re.sub(r"<(?!/li)[^>]+>", "", html))))


def _recorded_replay(keep: bool) -> tuple[str, dict[str, str]]:
    ids = serve_and_decide(keep=keep)
    b = candidate(4, keep=keep, per_member=1100, income_limit_pct=3.0)
    result = replay(b, "prod", clock.now() - timedelta(days=30))
    with session_scope() as s:
        store.record_check(s, sha256=b.sha256, kind="replay", ok=result.ok, summary=result.to_dict(), actor="tester")
    return b.sha256, ids


def test_the_card_shows_how_many_real_decisions_would_change_and_how_with_example_ids():
    sha, ids = _recorded_replay(keep=True)
    html = TestClient(create_app(identify)).get("/reviews", headers=as_("bob")).text
    card = _text(html[html.index(f'data-sha="{sha}"'):])
    assert "Replay on real decisions passed 2 of 5 replayed prod's decisions since" in card
    assert f"1 eligible → not eligible (e.g. {ids['over_new_limit']})" in card
    assert "0 not eligible → eligible" in card
    assert f"1 amount up, $400 in all, at most $400 (e.g. {ids['raised']})" in card
    assert "1 amount down, $4,000 in all, at most $4,000" in card
    since = re.search(r"decisions since <time datetime=\"([^\"]+)\"", html)
    assert since is not None  # the window's start is a time in the pipeline's zone, not a bare ISO instant


def test_the_card_says_which_fields_could_not_be_replayed_instead_of_a_figure():
    sha, _ = _recorded_replay(keep=False)
    html = TestClient(create_app(identify)).get("/reviews", headers=as_("bob")).text
    card = _text(html[html.index(f'data-sha="{sha}"'):])
    assert "0 of 0 replayed" in card
    assert ("not replayed candidate reads household_income, which the log keeps only as a keyed hash: 5 decisions "
            "cannot be replayed on that field") in card

"""The clerk's card as a browser shows it: plain-words changes, prod's cost as baseline, Airflow's themes.

hms.web served by a real uvicorn on 127.0.0.1 (no Airflow: the host's identity is a cookie here; the JWT
is proven in tests/integration/test_review_api.py) over a registry this test fills with the core's own
calls: wildfire v2 approved and live in every environment, v3 pushed and never deployed, v4 pushed with its
test (a real simulation against v2) and scan recorded and one approval — the card a second clerk reviews.

Headless Chromium (selenium) checks what a clerk sees in the first screen, the light and the dark theme
(``prefers-color-scheme`` emulated over the DevTools protocol, and the Airflow page around the iframe
switching its own ``class="dark"``), that the full report opens in a new tab, and that a scheduler reads
every time on the Deploys page — the API's refusal included — in the pipeline's zone. Screenshots:
tests/artifacts/web-card-light.png, web-card-dark.png, web-card-airflow-dark.png, web-report-light.png,
web-report-dark.png, web-deploys-dark.png.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi import Request
from fastapi.responses import HTMLResponse

from hms import clock, deployments, protocol
from hms.pipeline_config import load_pipeline_config
from hms.registry import store
from hms.registry.db import session_scope
from hms.simulate import simulate
from hms.web import WebError, create_app
from tests.conftest import WILDFIRE
from tests.deploy_helpers import record, record_checks
from tests.web_harness import ARTIFACTS, background, dark, headless_chromium, served_in_thread, until

pytestmark = pytest.mark.browser

POPULATION = "synthetic:3000:7"
COMMENT = "Legal basis checked <script>window.hmsPwned = 1</script>"
# Airflow's UI keeps its mode as a class on its own <html> (next-themes, attribute "class"); this stand-in
# frames the page the way Airflow's plugin route does.
AIRFLOW_LIKE = (
    '<!DOCTYPE html><html class="light"><body><iframe src="/hms/reviews" width="1380" height="960">'
    "</iframe></body></html>"
)


def identify(request: Request) -> str:
    user = request.cookies.get("hms-test-user")
    if not user:
        raise WebError(401, "no user", field="hms-test-user")
    return user


def wildfire(version: int, effective_in: timedelta, **params: float) -> protocol.Protocol:
    data = copy.deepcopy(protocol.load(WILDFIRE).data)
    data["metadata"]["version"] = version
    data["metadata"]["effective_at"] = (clock.now() + effective_in).isoformat()
    data["parameters"].update(params)
    data["budget"]["population"] = POPULATION
    return protocol.from_data(data, f"wildfire v{version}")


def record_test(b: Any, baseline: Any = None) -> None:
    """A passing test check carrying a real simulation, as ``hms policy test --record`` stores it; with
    ``baseline`` (prod's bundle) the simulation compares against it in the same run."""
    sim = simulate(b, POPULATION, baseline=baseline, detail=True).to_dict()
    summary = {"ok": True, "total": 9, "failed": 0, "cases": [], "simulation": sim}
    with session_scope() as s:
        store.record_check(s, sha256=b.sha256, kind="test", ok=True, summary=summary, actor="tester")


@pytest.fixture
def registry() -> dict[str, Any]:
    cfg = load_pipeline_config()
    prod = record(wildfire(2, -timedelta(days=10), per_member=800, max_payment=4000))
    record_test(prod)
    record_checks(prod, ("scan", "chaos"))
    with session_scope() as s:
        deployments.record_review(s, prod, user="alice", role="legal", decision="approve", comment="", config=cfg)
        deployments.record_review(s, prod, user="bob", role="budget", decision="approve", comment="", config=cfg)
        for env in cfg.environment_names:
            deployments.deploy(s, prod, env, activate_at=None, actor="ops", config=cfg, run_id="manual__v2")
    record(wildfire(3, timedelta(days=20), per_member=1000, max_payment=5000))
    v4 = record(wildfire(4, timedelta(days=30), per_member=1100, max_payment=5000))
    record_test(v4, baseline=prod)
    record_checks(v4, ("scan",))
    with session_scope() as s:
        deployments.record_review(s, v4, user="alice", role="legal", decision="approve", comment=COMMENT, config=cfg)
    return {"sha": v4.sha256}


class TestRunLinks:
    """Where this test's host "shows" runs and step logs (the Airflow plugin's are hms_operators.run_links)."""

    def run(self, protocol_id: str, run_id: str) -> str:
        return f"/runs/{protocol_id}/{run_id}"

    def step(self, protocol_id: str, run_id: str, stage: str, environment: str | None) -> str | None:
        return f"/runs/{protocol_id}/{run_id}/{stage}/{environment or '-'}"


@contextlib.contextmanager
def served() -> Iterator[str]:
    """The app mounted under /hms as the Airflow plugin mounts it, beside a stand-in of Airflow's page."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/airflow-like", response_class=HTMLResponse)
    def airflow_like() -> HTMLResponse:
        return HTMLResponse(AIRFLOW_LIKE)

    app.mount("/hms", create_app(identify, links=TestRunLinks()))

    with served_in_thread(app) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
    with headless_chromium("1400,1000") as driver:
        yield driver


def scheme(driver: Any, value: str) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": value}]}
    )


def test_a_clerk_reads_the_changes_and_the_cost_against_prod_first_in_light_and_dark_and_the_report_in_a_new_tab(
    registry, browser
):
    from selenium.webdriver.common.by import By

    sha = registry["sha"]
    with served() as url:
        browser.get(f"{url}/hms/static/base.css")  # the cookie's origin first
        browser.add_cookie({"name": "hms-test-user", "value": "bob"})
        scheme(browser, "light")
        browser.get(f"{url}/hms/reviews")
        assert browser.title == "Reviews" and browser.find_element(By.TAG_NAME, "h1").text == "Reviews"
        card = browser.find_element(By.CSS_SELECTOR, f"section.bundle[data-sha='{sha}'][data-state='waiting']")

        # what changed, in plain words, against prod (v2) and against the previous version (v3), on the first screen
        vs_prod = card.find_element(By.CSS_SELECTOR, ".change-set[data-against='prod']").text
        assert "Against prod (v2)" in vs_prod
        assert "per_member: 800 → 1100" in vs_prod and "max_payment: 4000 → 5000" in vs_prod
        vs_prev = card.find_element(By.CSS_SELECTOR, ".change-set[data-against='previous']").text
        assert "Against the previous version (v3)" in vs_prev and "per_member: 1000 → 1100" in vs_prev
        assert "max_payment" not in vs_prev
        first = card.find_element(By.CSS_SELECTOR, ".change-set[data-against='prod'] li.change")
        assert first.location["y"] + first.size["height"] < 1000 and first.is_displayed()
        # the YAML diff is there only on request
        assert not card.find_element(By.CSS_SELECTOR, "details.raw-diff pre.diff").is_displayed()

        # the cost against prod's, with the delta, and a chart whose axis fits cap and costs
        sentence = card.find_element(By.CSS_SELECTOR, ".cost-sentence").text
        assert sentence.startswith("prod (v2) costs $") and "; this costs $" in sentence and "%)" in sentence
        assert not card.find_elements(By.CSS_SELECTOR, ".cost-two-runs")  # one run: the report's own baseline
        ticks = [t.text for t in card.find_elements(By.CSS_SELECTOR, "svg[aria-label='cost vs cap'] text.tick")]
        assert ticks[-1] == "$1.2B", ticks  # a $1B cap: the axis ends at $1.2B, not $2B
        labels = [t.text for t in card.find_elements(By.CSS_SELECTOR, "svg[aria-label='cost vs cap'] text.lab")]
        assert "prod v2" in labels and "v4" in labels

        # times in the pipeline's zone, named, with UTC on hover; the hostile comment is text
        eff = card.find_element(By.CSS_SELECTOR, "p.sub time")
        assert eff.text.endswith((" EST", " EDT")) and eff.get_attribute("title").endswith(" UTC")
        assert [q.text for q in card.find_elements(By.CSS_SELECTOR, "q.comment")] == [COMMENT]
        assert browser.execute_script("return window.hmsPwned === undefined")

        assert browser.execute_script("return document.documentElement.dataset.theme") == "light"
        assert not dark(background(browser))
        browser.save_screenshot(str(ARTIFACTS / "web-card-light.png"))
        scheme(browser, "dark")  # the system's choice is followed live, without a reload
        until(
            "the dark theme", lambda: browser.execute_script("return document.documentElement.dataset.theme") == "dark"
        )
        assert dark(background(browser))
        browser.save_screenshot(str(ARTIFACTS / "web-card-dark.png"))

        # the report link opens a new tab, and the report there agrees with the card
        link = card.find_element(By.CSS_SELECTOR, "a.report")
        assert (link.get_attribute("target"), link.get_attribute("rel")) == ("_blank", "noopener")
        before = set(browser.window_handles)
        link.click()
        tab = until("the report's tab", lambda: set(browser.window_handles) - before).pop()
        browser.switch_to.window(tab)
        until("the report", lambda: browser.find_elements(By.CSS_SELECTOR, "svg[aria-label='cost vs cap']"))
        report_sentence = browser.find_element(By.CSS_SELECTOR, ".cost-sentence").text
        assert report_sentence == sentence.replace("prod (v2)", "the baseline (v2)", 1)
        scheme(browser, "dark")  # emulation is per tab: the new one starts from the system's light
        until("the dark report", lambda: dark(background(browser)))
        browser.save_screenshot(str(ARTIFACTS / "web-report-dark.png"))
        scheme(browser, "light")
        until("the light report", lambda: not dark(background(browser)))
        browser.save_screenshot(str(ARTIFACTS / "web-report-light.png"))
        browser.close()
        browser.switch_to.window(next(iter(before)))

        # inside Airflow: the page follows the mode of the page around the iframe, not the system's
        scheme(browser, "light")
        browser.get(f"{url}/airflow-like")
        frame = browser.find_element(By.TAG_NAME, "iframe")
        browser.switch_to.frame(frame)
        until("the framed card", lambda: browser.find_elements(By.CSS_SELECTOR, f"section.bundle[data-sha='{sha}']"))
        assert browser.execute_script("return document.documentElement.dataset.theme") == "light"
        browser.switch_to.default_content()
        browser.execute_script("document.documentElement.className = 'dark'")  # Airflow's theme toggle
        browser.switch_to.frame(frame)
        until("the framed page turning dark", lambda: dark(background(browser)))
        browser.switch_to.default_content()
        browser.save_screenshot(str(ARTIFACTS / "web-card-airflow-dark.png"))


def test_a_scheduler_reads_every_time_in_the_pipelines_zone_on_the_deploys_page_even_in_the_apis_refusal(browser):
    """The API states instants in UTC ISO; hms.js shows those in a refusal as the page does its own times."""
    from selenium.webdriver.common.by import By

    from tests.unit.test_web_reviews import _monday_noon, _staged, bundle_of

    b = bundle_of()
    _staged(b, _monday_noon())  # live in staging and preprod, pending in prod
    with served() as url:
        browser.get(f"{url}/hms/static/base.css")
        browser.add_cookie({"name": "hms-test-user", "value": "dana"})
        scheme(browser, "dark")
        browser.get(f"{url}/hms/ops")
        assert browser.title == "Deploys" and browser.find_element(By.TAG_NAME, "h1").text == "Deploys"
        pending = browser.find_element(By.CSS_SELECTOR, f"tr[data-env='prod'] .pending[data-sha='{b.sha256}'] time")
        assert pending.text.endswith((" EST", " EDT")) and pending.get_attribute("title").endswith(" UTC")
        form = browser.find_element(By.CSS_SELECTOR, f"form.move-form[data-sha='{b.sha256}'][data-env='prod']")
        form.find_element(By.NAME, "effective_at").send_keys((clock.now() - timedelta(days=1)).isoformat())
        form.find_element(By.NAME, "reason").send_keys("a time in the past, refused")
        form.find_element(By.CSS_SELECTOR, "button.move").click()
        msg = until("the refusal", lambda: form.find_elements(By.CSS_SELECTOR, ".msg.err time"))
        assert "422" in form.find_element(By.CSS_SELECTOR, ".msg").text
        assert "+00:00" not in form.find_element(By.CSS_SELECTOR, ".msg").text
        assert all(t.text.endswith((" EST", " EDT")) and t.get_attribute("title").endswith(" UTC") for t in msg)
        assert dark(background(browser))
        browser.save_screenshot(str(ARTIFACTS / "web-deploys-dark.png"))


def test_a_final_decision_is_confirmed_naming_the_hash_and_the_card_then_tells_the_bundles_life(registry, browser):
    from selenium.webdriver.common.by import By

    sha = registry["sha"]
    with served() as url:
        browser.get(f"{url}/hms/static/base.css")
        browser.add_cookie({"name": "hms-test-user", "value": "carol"})  # carol holds legal and budget
        browser.get(f"{url}/hms/reviews")
        card = browser.find_element(By.CSS_SELECTOR, f"section.bundle[data-sha='{sha}'][data-state='waiting']")
        role = card.find_element(By.NAME, "role")
        assert role.get_attribute("value") == "budget"  # alice approved as legal: the missing role comes first
        assert "still needed" in role.text
        since = card.find_element(By.CSS_SELECTOR, "p.waiting-since")
        assert since.text.startswith("Waiting for review since ") and len(since.find_elements(By.TAG_NAME, "time")) == 2

        card.find_element(By.CSS_SELECTOR, "button[data-decision='approve']").click()
        dialog = until(
            "the confirmation", lambda: card.find_elements(By.CSS_SELECTOR, "dialog.confirm-decision[open]")
        )[0]
        assert f"sha256:{sha}" in dialog.text and "as budget" in dialog.text and "final" in dialog.text
        browser.save_screenshot(str(ARTIFACTS / "web-confirm-decision.png"))
        dialog.find_element(By.CSS_SELECTOR, "button.cancel").click()
        with session_scope(read_only=True) as s:  # cancelled: nothing was sent
            assert [r.user for r in deployments.reviews_for(s, sha, load_pipeline_config())] == ["alice"]

        card.find_element(By.CSS_SELECTOR, "button[data-decision='approve']").click()
        until("the confirmation again", lambda: card.find_elements(By.CSS_SELECTOR, "dialog.confirm-decision[open]"))
        card.find_element(By.CSS_SELECTOR, "dialog.confirm-decision button.confirm").click()
        until("the API's answer", lambda: card.find_element(By.CSS_SELECTOR, ".msg").text == "recorded")

        decided = until(
            "the decided card",
            lambda: browser.find_elements(
                By.CSS_SELECTOR, f"section.bundle.decided[data-sha='{sha}'][data-state='approved']"
            ),
        )[0]
        events = [e.text for e in decided.find_elements(By.CSS_SELECTOR, "ol.life li.event")]
        assert events[0].split(" — ", 1)[1].startswith("pushed v4 by tester")
        assert any("approved by alice as legal" in e for e in events)
        assert any("approved by carol as budget" in e for e in events)
        assert any("compliance scan (OPA) passed" in e for e in events)
        # an event of a pipeline run links the run and its step's log, opened in the whole window (out of the frame)
        with session_scope() as s:
            store.record_check(
                s, sha256=sha, kind="chaos", ok=True, summary={"ok": True}, actor="airflow", run_id="manual__v4"
            )
        browser.get(f"{url}/hms/reviews")
        event = browser.find_element(By.CSS_SELECTOR, f"section[data-sha='{sha}'] ol.life li[data-run='manual__v4']")
        assert "chaos experiment passed" in event.get_attribute("textContent")
        log, run = event.find_element(By.CSS_SELECTOR, "a.log-link"), event.find_element(By.CSS_SELECTOR, "a.run-link")
        assert log.get_attribute("target") == run.get_attribute("target") == "_top"
        assert log.get_attribute("href").endswith("/runs/wildfire-aid-2024/manual__v4/chaos/-")
        assert run.get_attribute("href").endswith("/runs/wildfire-aid-2024/manual__v4")
        browser.save_screenshot(str(ARTIFACTS / "web-card-life.png"))


def test_a_scheduler_moves_an_activation_with_the_date_time_picker_in_the_pipelines_zone(browser):
    from zoneinfo import ZoneInfo

    from selenium.webdriver.common.by import By

    from tests.unit.test_web_reviews import _monday_noon, _staged, bundle_of

    b = bundle_of()
    first = _monday_noon()
    _staged(b, first)
    new = (first + timedelta(days=7)).astimezone(ZoneInfo("America/New_York")).replace(hour=0, minute=0)
    with served() as url:
        browser.get(f"{url}/hms/static/base.css")
        browser.add_cookie({"name": "hms-test-user", "value": "dana"})
        browser.get(f"{url}/hms/ops")
        form = browser.find_element(By.CSS_SELECTOR, f"form.move-form[data-sha='{b.sha256}'][data-env='prod']")
        picker = form.find_element(By.NAME, "wall_time")
        assert picker.get_attribute("type") == "datetime-local"
        assert form.find_element(By.CSS_SELECTOR, ".zone").text == "America/New_York"  # the zone it is read in
        browser.execute_script("arguments[0].value = arguments[1]", picker, new.strftime("%Y-%m-%dT%H:%M"))
        form.find_element(By.CSS_SELECTOR, "button.move").click()
        until(
            "the refusal of a move without a reason",
            lambda: "reason" in form.find_element(By.CSS_SELECTOR, ".msg").text,
        )
        form.find_element(By.NAME, "reason").send_keys("the gazette moved the date to midnight")
        form.find_element(By.CSS_SELECTOR, "button.move").click()
        until("the move", lambda: form.find_element(By.CSS_SELECTOR, ".msg").text == "recorded")
        with session_scope(read_only=True) as s:
            assert [d.activate_at for d in deployments.pending(s, "prod", b.protocol.id)] == [new]
        browser.get(f"{url}/hms/ops")
        history = browser.find_element(By.CSS_SELECTOR, f"section.protocol[data-protocol='{b.protocol.id}']").text
        assert "moved from " in history and " to " in history and "by dana: the gazette moved the date" in history
        # each deployment links its run and the log of the step that made it, opened out of the frame
        row = browser.find_element(By.XPATH, "//table[@class='compact']//tr[td[1]='preprod']")
        run, log = row.find_element(By.CSS_SELECTOR, "a.run-link"), row.find_element(By.CSS_SELECTOR, "a.log-link")
        assert run.text == "manual__run-1" and run.get_attribute("target") == log.get_attribute("target") == "_top"
        assert run.get_attribute("href").endswith(f"/runs/{b.protocol.id}/manual__run-1")
        assert log.get_attribute("href").endswith(f"/runs/{b.protocol.id}/manual__run-1/deploy/preprod")
        browser.save_screenshot(str(ARTIFACTS / "web-deploys-moved.png"))

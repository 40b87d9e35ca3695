"""Two clerks approve a running pipeline from the Airflow UI in headless Chromium, and the run moves on.

A real Airflow (api-server, scheduler, dag-processor, triggerer: AirflowStack) runs the policy DAG; its
review task waits (deferred) for two approvals. Alice logs in to the Airflow UI, opens "Reviews"
from the navigation (the plugin's page in Airflow's iframe), approves with a comment that carries a
``<script>``; Bob does the same in his own session; the page then shows the bundle approved and deployed
to staging, and Airflow reports the review task done. Then Dana (scheduler) moves prod's pending effective
time from the "Deploys" page, the waiting flip task follows it and the run ends in success with prod live.
Screenshots go to tests/artifacts/clerk-*.png.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests import web_harness
from tests.deploy_helpers import write_config
from tests.web_harness import ARTIFACTS, background, dark, headless_chromium

pytestmark = [pytest.mark.airflow, pytest.mark.browser]

DAG = "policy_wildfire-aid-2024"
COMMENT = 'Legal basis checked <script>window.hmsPwned = 1</script><img src=x onerror="window.hmsPwned = 2">'


def until(what: str, check: Callable[[], Any], timeout: float = 120, every: float = 1.0) -> Any:
    """tests.web_harness.until at Airflow's pace: its pages and runs move in seconds, not tenths."""
    return web_harness.until(what, check, timeout, every)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from devtools.airflow_stack import AirflowStack

    base = tmp_path_factory.mktemp("clerk-browser")
    config = write_config(base / "pipeline.yml",
                          approvals={"required": 2, "roles": ["legal", "budget"], "timeout_hours": 1,
                                     "poll_seconds": 2},
                          # Chaos is not what this test is about: three replicas and a 95 % floor keep a loaded
                          # machine's slow restarts from failing the clerks' flow (tests/integration/test_chaos_run.py
                          # holds the strict hypothesis).
                          chaos={"environment": "preprod", "time": "3s", "kill_fraction": 0.1, "min_health": 0.95,
                                 "replicas": 3})
    s = AirflowStack(base / "airflow", env={"HMS_HOME": str(base / "hms"), "HMS_PIPELINE_CONFIG": str(config)})
    s.start(timeout=300)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    with headless_chromium("1440,1100") as driver:
        yield driver


def log_in(driver: Any, stack: Any, user: str) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(stack.url + "/")
    until("the login form", lambda: driver.find_elements(By.NAME, "username"), 60)
    driver.find_element(By.NAME, "username").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(stack.users[user])
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    until(f"{user} logged in", lambda: "login" not in driver.current_url, 60)


def open_from_nav(driver: Any, label: str = "Reviews", route: str = "hms-reviews", page: str = "/hms/reviews") -> None:
    """Click the plugin's entry in Airflow's sidebar and switch into the iframe that shows the plugin page."""
    from selenium.webdriver.common.by import By

    link = until(f"the {label} entry in the navigation", lambda: [
        e for e in driver.find_elements(By.XPATH, f"//a[contains(@href, '/plugin/{route}')]"
                                                  f"[.//*[normalize-space(text())='{label}']]")
        if e.is_displayed()], 60)[0]
    link.click()
    until("the plugin route", lambda: f"/plugin/{route}" in driver.current_url, 30)
    frame = until(f"the {page} iframe", lambda: [
        f for f in driver.find_elements(By.TAG_NAME, "iframe") if page in (f.get_attribute("src") or "")], 60)[0]
    driver.switch_to.frame(frame)
    until("the plugin page inside the iframe", lambda: driver.find_elements(By.CSS_SELECTOR, "nav.top"), 30)


def approve_in_page(driver: Any, sha: str, comment: str) -> None:
    from selenium.webdriver.common.by import By

    card = until("the bundle waiting for review", lambda: _reload_until(
        driver, f"section.bundle[data-sha='{sha}'][data-state='waiting'] form.review-form"), 120)
    card.find_element(By.NAME, "comment").send_keys(comment)
    card.find_element(By.CSS_SELECTOR, "button[data-decision='approve']").click()
    # A final decision is confirmed once more, naming the exact hash (issue 18): nothing is sent before that.
    dialog = until("the confirmation", lambda: card.find_element(By.CSS_SELECTOR, "dialog.confirm-decision[open]"), 10,
                   0.2)
    assert f"sha256:{sha}" in dialog.text and "final" in dialog.text
    dialog.find_element(By.CSS_SELECTOR, "button.confirm").click()
    until("the API's answer", lambda: card.find_element(By.CSS_SELECTOR, ".msg").text == "recorded", 30, 0.2)


def _reload_until(driver: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, css)
    if found:
        return found[0]
    driver.execute_script("location.reload()")
    return None


def test_two_clerks_approve_from_the_airflow_ui_the_run_moves_on_and_a_scheduler_brings_prod_forward(stack, browser):
    from selenium.webdriver.common.by import By

    run_id = stack.trigger(DAG, {"effective_at": "+600s", "chaos_window": "3s"})
    until("the review task waiting", lambda: stack.task_states(DAG, run_id).get("review.approvals")
          in ("deferred", "running", "up_for_reschedule"), 240, 2)
    sha = _bundle_sha(stack, run_id)

    log_in(browser, stack, "alice")
    open_from_nav(browser)
    browser.switch_to.default_content()
    browser.save_screenshot(str(ARTIFACTS / "clerk-1-alice-sees-the-bundle.png"))
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe[src*='/hms/reviews']"))
    page = browser.find_element(By.CSS_SELECTOR, f"section.bundle[data-sha='{sha}']").text
    assert "Tests passed 9 of 9 cases pass" in page and "privacy(0) ethics(0) legal(0)" in page
    assert browser.find_elements(By.CSS_SELECTOR, f"section.bundle[data-sha='{sha}'] svg[aria-label='cost vs cap']")
    approve_in_page(browser, sha, COMMENT)
    shown = until("alice's comment on the page", lambda: [
        q.text for q in browser.find_elements(By.CSS_SELECTOR, f"section.bundle[data-sha='{sha}'] q.comment")], 30)
    assert shown == [COMMENT]  # the markup is shown as text ...
    assert browser.execute_script("return window.hmsPwned === undefined")  # ... and never ran
    browser.switch_to.default_content()
    browser.save_screenshot(str(ARTIFACTS / "clerk-2-alice-approved.png"))
    assert stack.task_states(DAG, run_id)["review.approvals"] != "success"  # one approval is not enough

    log_in(browser, stack, "bob")
    open_from_nav(browser)
    approve_in_page(browser, sha, "Within the budget cap")

    def staging_live() -> Any:
        chips = browser.find_elements(
            By.CSS_SELECTOR, f"section.decided[data-sha='{sha}'] .env[data-env='staging'][data-state='live']")
        if not chips:
            browser.execute_script("location.reload()")
        return chips

    until("the page showing the bundle live in staging", staging_live, 240, 3)
    card = browser.find_element(By.CSS_SELECTOR, f"section.decided[data-sha='{sha}']").text
    assert "approved" in card and "alice (legal) approved" in card and "bob (budget) approved" in card
    browser.switch_to.default_content()
    browser.save_screenshot(str(ARTIFACTS / "clerk-3-run-moved-on.png"))
    states = stack.task_states(DAG, run_id)
    assert states["review.approvals"] == "success" and states["staging.deploy"] == "success", states
    follows_airflows_dark_mode_and_links_into_airflow(browser, stack, run_id, sha)

    # The run stages prod 10 minutes ahead and its flip task waits, deferred; the scheduler brings it forward.
    until("the flip task waiting for the effective time", lambda: stack.task_states(DAG, run_id).get(
        "flip.wait_for_effective_time") == "deferred", 300, 2)
    log_in(browser, stack, "dana")
    open_from_nav(browser, "Deploys", "hms-ops", "/hms/ops")
    form = until("the move form of prod's pending activation", lambda: _reload_until(
        browser, f"form.move-form[data-sha='{sha}'][data-env='prod']"), 60)
    form.find_element(By.NAME, "effective_at").send_keys("+15s")
    form.find_element(By.NAME, "reason").send_keys("Gazette publication moved to today")
    form.find_element(By.CSS_SELECTOR, "button.move").click()
    until("the move recorded", lambda: form.find_element(By.CSS_SELECTOR, ".msg").text == "recorded", 30, 0.2)
    browser.switch_to.default_content()
    browser.save_screenshot(str(ARTIFACTS / "clerk-4-dana-moved-the-effective-time.png"))
    assert stack.wait_for_run(DAG, run_id, timeout=240) == "success", stack.task_states(DAG, run_id)
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe[src*='/hms/ops']"))
    browser.execute_script("location.reload()")
    prod = until("prod serving v3 on the Deploys page", lambda: [
        r.text for r in browser.find_elements(By.CSS_SELECTOR, "section[data-protocol='wildfire-aid-2024'] "
                                                               "tr[data-env='prod']") if "v3" in r.text], 30)
    assert sha[:12] in prod[0]
    history = browser.find_element(By.CSS_SELECTOR, "section[data-protocol='wildfire-aid-2024'] table.compact").text
    assert "moved" in history and "by dana: Gazette publication moved to today" in history, history
    browser.switch_to.default_content()
    browser.save_screenshot(str(ARTIFACTS / "clerk-5-prod-live.png"))


def follows_airflows_dark_mode_and_links_into_airflow(browser: Any, stack: Any, run_id: str, sha: str) -> None:
    """In the real Airflow UI: the card's life links this run and its steps' logs to Airflow's own pages, and
    the page turns dark when Airflow does (its theme, next-themes' ``theme`` in localStorage, on <html>)."""
    from selenium.webdriver.common.by import By

    frame = "iframe[src*='/hms/reviews']"
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, frame))
    links = {a.get_attribute("href") for a in browser.find_elements(
        By.CSS_SELECTOR, f"section.decided[data-sha='{sha}'] ol.life li[data-run='{run_id}'] a")}
    run = f"{stack.url}/dags/{DAG}/runs/{run_id}"
    assert run in links and f"{run}/tasks/staging.deploy" in links, links
    browser.switch_to.default_content()
    browser.execute_script("localStorage.setItem('theme', 'dark')")
    browser.refresh()
    until("Airflow in dark mode", lambda: browser.execute_script(
        "return document.documentElement.classList.contains('dark')"), 30, 0.5)
    browser.switch_to.frame(until("the Reviews iframe", lambda: browser.find_elements(By.CSS_SELECTOR, frame), 60)[0])
    until("the page in Airflow's dark theme", lambda: browser.execute_script(
        "return document.documentElement.dataset.theme") == "dark" and dark(background(browser)), 30, 0.5)
    browser.switch_to.default_content()
    browser.save_screenshot(str(ARTIFACTS / "clerk-3b-dark.png"))
    browser.execute_script("localStorage.setItem('theme', 'light')")
    browser.get(run)  # the run link opens Airflow's own page of this run
    until("Airflow's page of the run", lambda: run_id in browser.find_element(By.TAG_NAME, "body").text, 60)


def _bundle_sha(stack: Any, run_id: str) -> str:
    """The hash the run's build step recorded (its XCom), which the page must show."""
    with stack.client() as c:
        r = c.get(f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/build.bundle/xcomEntries/return_value")
        assert r.status_code == 200, r.text
        value = r.json()["value"]
    return str((value if isinstance(value, dict) else json.loads(value))["sha256"])


def _ended(stack: Any, run_id: str) -> bool:
    return stack.run_state(DAG, run_id) in ("success", "failed")


def mark_task_success(driver: Any, stack: Any, run_id: str, task_id: str) -> None:
    """Airflow 3.3's own UI: the task instance page, "Mark Task Instance as..." → Success → Confirm."""
    from selenium.webdriver.common.by import By

    driver.get(f"{stack.url}/dags/{DAG}/runs/{run_id}/tasks/{task_id}")
    until("the mark-as button", lambda: driver.find_elements(
        By.CSS_SELECTOR, "button[aria-label='Mark Task Instance as...']"), 60)[0].click()
    until("the Success entry", lambda: [e for e in driver.find_elements(By.CSS_SELECTOR, "[role=menuitem]")
                                        if e.text.strip() == "Success"], 30)[0].click()
    until("the Confirm button", lambda: [b for b in driver.find_elements(By.CSS_SELECTOR, "[role=dialog] button")
                                         if b.text.strip() == "Confirm"], 30)[0].click()


def test_mark_success_on_the_review_task_in_the_airflow_ui_deploys_nothing(stack, browser, monkeypatch):
    """The first attack on the gates, as ops would do it: a run waits for two approvals; a clerk (an Airflow
    Viewer) cannot mark the review task success, an admin can — and still no environment takes the bundle,
    because every deploy step asks the core, which finds no approvals for the hash. The run ends failed."""
    from sqlalchemy import select

    from hms.registry import db
    from hms.registry.models import Deployment
    from tests.deploy_helpers import record, variant

    monkeypatch.setenv("HMS_HOME", stack.env["HMS_HOME"])  # the registry the stack's pipeline uses
    monkeypatch.setenv("HMS_PIPELINE_CONFIG", stack.env["HMS_PIPELINE_CONFIG"])
    db.reset_engines()
    sha = record(variant(4)).sha256  # the same rules, a bundle no run has taken up (a bundle runs once)
    run_id = stack.trigger(DAG, {"sha256": sha, "effective_at": "+600s", "chaos_window": "3s"})
    until("the review task waiting", lambda: stack.task_states(DAG, run_id).get("review.approvals")
          in ("deferred", "running", "up_for_reschedule") or _ended(stack, run_id), 240, 2)
    assert stack.run_state(DAG, run_id) not in ("success", "failed"), stack.task_states(DAG, run_id)

    log_in(browser, stack, "alice")  # a clerk: the UI offers the button, Airflow refuses the change
    mark_task_success(browser, stack, run_id, "review.approvals")
    until("Airflow's refusal", lambda: "You do not have permission to perform this action" in browser.page_source,
          30, 0.5)
    browser.save_screenshot(str(ARTIFACTS / "mark-success-1-clerk-refused.png"))
    assert stack.task_states(DAG, run_id)["review.approvals"] in ("deferred", "running", "up_for_reschedule")

    log_in(browser, stack, "admin")
    mark_task_success(browser, stack, run_id, "review.approvals")
    until("the review task marked success", lambda: stack.task_states(DAG, run_id)["review.approvals"] == "success",
          30, 0.5)
    assert stack.wait_for_run(DAG, run_id, timeout=240) == "failed"
    browser.get(f"{stack.url}/dags/{DAG}/runs/{run_id}")
    time.sleep(3)
    browser.save_screenshot(str(ARTIFACTS / "mark-success-2-staging-refused.png"))
    states = stack.task_states(DAG, run_id)
    assert states["staging.deploy"] == "failed" and states["preprod.deploy"] == "upstream_failed", states
    with db.session_scope(read_only=True) as s:
        assert list(s.scalars(select(Deployment).where(Deployment.bundle_sha256 == sha))) == []
    db.reset_engines()

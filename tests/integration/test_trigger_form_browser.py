"""Run a pushed bundle from the Airflow UI (issue 18, item 1), in headless Chromium on a real Airflow.

Admin opens the policy DAG, clicks Trigger, and the form's "Bundle to run" field offers the protocol's pushed
bundles as ``v4 · <short sha> · approved``, ``v2 · … · live in prod``; picking one and triggering starts a run
whose build step takes that bundle (its XCom names the picked hash, not the repository file's v3).
Screenshots go to tests/artifacts/trigger-*.png.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from hms.ci import bundle_prefix_of_run
from tests.deploy_helpers import approve, config, promote_all, ready, record, variant
from tests.integration.test_clerk_page_browser import browser, log_in, until  # noqa: F401 (fixture)
from tests.web_harness import ARTIFACTS

pytestmark = [pytest.mark.airflow, pytest.mark.browser]

DAG = "policy_wildfire-aid-2024"


def open_trigger_form(driver: Any, stack: Any) -> Any:
    from selenium.webdriver.common.by import By

    driver.get(f"{stack.url}/dags/{DAG}")
    button = until(
        "the Trigger button",
        lambda: [
            b for b in driver.find_elements(By.XPATH, "//button[normalize-space(.)='Trigger']") if b.is_displayed()
        ],
        60,
    )
    button[0].click()
    return until(
        "the trigger form's bundle field",
        lambda: (
            [e for e in driver.find_elements(By.ID, "element_bundle") if e.is_displayed()] or _expand_parameters(driver)
        ),
        30,
    )[0]


def _expand_parameters(driver: Any) -> list[Any]:
    """The form keeps the DAG's params in a collapsed section: open it (and report nothing found yet)."""
    from selenium.webdriver.common.by import By

    for b in driver.find_elements(By.XPATH, "//button[contains(normalize-space(.), 'Run Parameters')]"):
        if b.is_displayed() and b.get_attribute("aria-expanded") != "true":
            b.click()
    return []


def test_the_trigger_form_offers_the_pushed_bundles_and_the_run_takes_the_pick(tmp_path, hms_home, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    from devtools.airflow_stack import AirflowStack

    cfg = config()
    v2 = ready(record(variant(2)), cfg)
    promote_all(v2, cfg)  # prod serves v2
    v4 = record(variant(4))  # pushed, approved, not the repository file (v3)
    approve(v4, cfg)
    settings = {"HMS_HOME": str(hms_home), "HMS_PIPELINE_CONFIG": os.environ["HMS_PIPELINE_CONFIG"]}

    with AirflowStack(tmp_path / "airflow", env=settings) as stack:
        log_in(browser, stack, "admin")
        field = open_trigger_form(browser, stack)
        browser.save_screenshot(str(ARTIFACTS / "trigger-0-form.png"))
        field.click()
        options = until(
            "the bundle options",
            lambda: [o.text for o in browser.find_elements(By.CSS_SELECTOR, "[role=option]") if o.text],
            30,
        )
        browser.save_screenshot(str(ARTIFACTS / "trigger-1-bundle-choices.png"))
        assert f"v4 · {v4.sha256[:12]} · approved" in options, options
        assert f"v2 · {v2.sha256[:12]} · live in prod" in options, options
        pick = next(o for o in browser.find_elements(By.CSS_SELECTOR, "[role=option]") if o.text.startswith("v4 "))
        pick.click()
        browser.save_screenshot(str(ARTIFACTS / "trigger-2-v4-picked.png"))
        buttons = [
            b for b in browser.find_elements(By.XPATH, "//button[normalize-space(.)='Trigger']") if b.is_displayed()
        ]
        buttons[-1].click()  # the dialog's own Trigger button, below the form

        def picked_run() -> Any:
            with stack.client() as c:
                runs = c.get(f"/api/v2/dags/{DAG}/dagRuns").json()["dag_runs"]
            return [r for r in runs if (r.get("conf") or {}).get("bundle") == v4.sha256]

        (run,) = until("a run with the pick in its conf", picked_run, 60)
        # the form sent no run id: the run's id names the bundle it runs (hms_operators.run_ids), never manual__…
        assert bundle_prefix_of_run(run["dag_run_id"]) == v4.sha256[:12], run["dag_run_id"]
        until(
            "the build step",
            lambda: stack.task_states(DAG, run["dag_run_id"]).get("build.bundle") in ("success", "failed"),
            120,
        )
        browser.save_screenshot(str(ARTIFACTS / "trigger-3-run-started.png"))
        with stack.client() as c:
            built = c.get(
                f"/api/v2/dags/{DAG}/dagRuns/{run['dag_run_id']}/taskInstances/build.bundle/xcomEntries/return_value"
            ).json()["value"]
        assert stack.task_states(DAG, run["dag_run_id"])["build.bundle"] == "success"
        assert (built if isinstance(built, dict) else json.loads(built))["sha256"] == v4.sha256

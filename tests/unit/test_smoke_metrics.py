"""The post-flip check reads each replica's /metrics too: the new bundle's answers counted, its real traffic clean."""

from __future__ import annotations

import httpx

from hms import smoke
from hms.service.app import create_app
from hms.service.source import RegistrySource
from tests.deploy_helpers import config, promote_all, ready, record
from tests.unit.test_decision_service_metrics import DECIDE, FAMILY, _dividing
from tests.web_harness import served_in_thread


def _prod_replica():
    b = record(_dividing(3))
    cfg = config()
    ready(b, cfg)
    promote_all(b, cfg)
    return b


def test_the_post_flip_check_passes_when_the_replica_counted_its_answers_for_the_new_bundle(hms_home):
    b = _prod_replica()
    with served_in_thread(create_app(RegistrySource("prod"), poll_interval=0.02), "a prod replica") as url:
        cfg = config(environments=[{"name": "staging"}, {"name": "preprod"}, {"name": "prod", "urls": [url]}])
        result = smoke.check_environment(b, "prod", cfg)
    assert result.ok, result.summary
    assert any(f"/metrics: 1 answers for {b.short}, 0 evaluation errors" in d for d in result.details), result.details


def test_the_post_flip_check_fails_when_real_traffic_failed_in_the_new_bundles_rules(hms_home):
    b = _prod_replica()
    with served_in_thread(create_app(RegistrySource("prod"), poll_interval=0.02), "a prod replica") as url:
        failed = httpx.post(url + DECIDE, json={"input": {**FAMILY, "household_income": 1000}})
        assert failed.status_code == 422  # a citizen's request the new rules could not evaluate
        cfg = config(environments=[{"name": "staging"}, {"name": "preprod"}, {"name": "prod", "urls": [url]}])
        result = smoke.check_environment(b, "prod", cfg)
    assert not result.ok
    assert "1 decisions failed in the rules" in result.summary
    assert "hms_decision_evaluation_errors_total" in result.summary


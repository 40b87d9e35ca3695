"""What the intake DAG takes up: per protocol, the newest recorded bundle that nothing deployed yet."""

from __future__ import annotations

from hms import gates, protocol
from hms.pipeline_config import load_pipeline_config
from tests.conftest import CHIP, WILDFIRE
from tests.deploy_helpers import promote_all, ready, record, variant


def test_only_the_newest_recorded_version_of_each_asked_protocol_is_a_candidate():
    record(variant(2))
    v3 = record(protocol.load(WILDFIRE))
    chip = record(protocol.load(CHIP))
    assert gates.intake_candidates(["wildfire-aid-2024", "chip-income-cap", "never-recorded"]) == [
        {"protocol_id": "chip-income-cap", "version": chip.protocol.version, "sha256": chip.sha256},
        {"protocol_id": "wildfire-aid-2024", "version": 3, "sha256": v3.sha256},
    ]
    assert gates.intake_candidates(["chip-income-cap"]) == [
        {"protocol_id": "chip-income-cap", "version": chip.protocol.version, "sha256": chip.sha256}]


def test_a_bundle_any_environment_received_is_taken_and_an_older_one_never_overtakes_it():
    cfg = load_pipeline_config()
    record(variant(2))
    v3 = record(protocol.load(WILDFIRE))
    ready(v3, cfg)
    promote_all(v3, cfg)  # deployed by hand, outside any pipeline run
    assert gates.intake_candidates(["wildfire-aid-2024"]) == []

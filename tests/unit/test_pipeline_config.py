"""The pipeline config's schema check, and the marker that lets later commands skip jsonschema.

A text that passed the schema once is trusted by its hash (see hms.pipeline_config): these tests
hold the marker to "same text, same schema" — an edit, a different schema, or a bad file is
always checked and refused with the field named.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hms import pipeline_config
from hms.errors import BadInput
from hms.pipeline_config import parse_pipeline_config
from tests.deploy_helpers import _config_text


def markers(home: Path) -> list[Path]:
    return sorted((home / "cache").glob("pipeline-config-*.valid"))


def test_a_valid_config_leaves_one_marker_and_parses_the_same_with_it(hms_home: Path) -> None:
    text = _config_text()
    first = parse_pipeline_config(text, "p.yml")
    assert len(markers(hms_home)) == 1

    again = parse_pipeline_config(text, "p.yml")

    assert again == first and len(markers(hms_home)) == 1


def test_an_edit_after_a_valid_text_is_checked_again_and_refused_naming_the_field(hms_home: Path) -> None:
    good = _config_text()
    parse_pipeline_config(good, "p.yml")
    bad = good.replace("required: 2", "required: 0")

    with pytest.raises(BadInput, match=r"approvals\.required") as e:
        parse_pipeline_config(bad, "p.yml")

    assert "p.yml" in str(e.value)
    assert len(markers(hms_home)) == 1  # a refused text leaves no marker


def test_an_unknown_key_is_refused_even_with_valid_texts_marked(hms_home: Path) -> None:
    parse_pipeline_config(_config_text(), "p.yml")
    with pytest.raises(BadInput, match="executoin"):
        parse_pipeline_config(_config_text(executoin={"mode": "kubernetes"}), "p.yml")


def test_a_changed_schema_does_not_trust_markers_made_under_the_old_one(
    hms_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _config_text(execution={"mode": "kubernetes"})
    parse_pipeline_config(text, "p.yml")
    stricter = {**pipeline_config.SCHEMA, "properties": {**pipeline_config.SCHEMA["properties"]}}
    stricter["properties"]["execution"] = {**stricter["properties"]["execution"], "required": ["image"]}
    monkeypatch.setattr(pipeline_config, "SCHEMA", stricter)

    with pytest.raises(BadInput, match="'image' is a required property"):
        parse_pipeline_config(text, "p.yml")


def test_an_unwritable_home_still_parses_and_validates_every_time(hms_home: Path) -> None:
    hms_home.mkdir(parents=True, exist_ok=True)
    (hms_home / "cache").write_text("a file where the cache directory would go")

    cfg = parse_pipeline_config(_config_text(), "p.yml")

    assert cfg.environment_names == ["staging", "preprod", "prod"]
    with pytest.raises(BadInput, match="timezone"):
        parse_pipeline_config(_config_text(timezone=5), "p.yml")


def test_kubernetes_mode_maps_each_environment_to_its_namespace() -> None:
    text = _config_text(
        execution={"mode": "kubernetes", "in_cluster": False},
        environments=[{"name": "staging"}, {"name": "preprod"}, {"name": "prod", "namespace": "citizens-prod"}],
    )
    cfg = parse_pipeline_config(text, "p.yml")
    assert cfg.execution.mode == "kubernetes" and cfg.execution.in_cluster is False
    assert [cfg.namespace_for(e) for e in cfg.environment_names] == ["hms-staging", "hms-preprod", "citizens-prod"]


@pytest.mark.parametrize("name", ["prod\n", "prod\r\n", "prod$(id)"])
def test_an_environment_name_with_a_trailing_newline_or_shell_is_refused(name: str) -> None:
    """Python's ``$`` matches before a final newline; the schema's patterns are ECMA-262, where it does not."""
    text = _config_text(environments=[{"name": "staging"}, {"name": "preprod"}, {"name": name}])
    with pytest.raises(BadInput, match=r"environments\.2\.name"):
        parse_pipeline_config(text, "p.yml")

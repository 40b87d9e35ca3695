"""The decision service documents itself offline: its docs pages and their assets come from the service, and
its OpenAPI says what to send and what comes back."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from hms.service.app import create_app
from hms.service.timeline import Snapshot

# Any absolute URL or protocol-relative reference in src/href, or a url(...) in inline CSS.
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["'](?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import""", re.I)


class _Empty:
    """A source with nothing deployed: the docs must not depend on what is in force."""

    environment = "test"

    def generation(self) -> int:
        return 1

    def load(self) -> Snapshot:
        return Snapshot.build("test", 1, [], {})


@pytest.fixture
def client():
    with TestClient(create_app(_Empty())) as c:
        yield c


def _assets(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html) + re.findall(
        r"""(?:url|spec-url)\s*[:=]\s*['"]([^'"]+)['"]""", html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_reference_no_external_host_and_every_asset_they_name_answers(client, page):
    r = client.get(page)
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert not EXTERNAL.search(r.text), EXTERNAL.search(r.text)
    assert "://" not in r.text  # no CDN, no Google fonts, no validator.swagger.io: no absolute URL at all
    named = [a for a in _assets(r.text) if a.startswith("/")]
    assert any(a.endswith(".js") for a in named), named  # the page really loads a local script
    for asset in named:
        answer = client.get(asset)
        assert answer.status_code == 200, asset
        assert len(answer.content) > 1000, asset  # the asset itself, not an empty stand-in


def test_the_openapi_declares_the_request_bodies_read_by_the_bounded_parser(client):
    spec = client.get("/openapi.json").json()
    decide = spec["paths"]["/v1/protocols/{pid}/decide"]["post"]
    body = decide["requestBody"]["content"]["application/json"]["schema"]
    assert decide["requestBody"]["required"] is True
    assert set(body["properties"]) == {"input", "as_of", "period", "explain"} and body["required"] == ["input"]
    assert body["additionalProperties"] is False
    batch = spec["paths"]["/v1/protocols/{pid}/decide/batch"]["post"]["requestBody"]["content"]["application/json"]
    assert batch["schema"]["required"] == ["inputs"] and batch["schema"]["properties"]["inputs"]["type"] == "array"


def test_the_openapi_declares_the_answers_and_the_refusals(client):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    decide = spec["paths"]["/v1/protocols/{pid}/decide"]["post"]["responses"]
    assert decide["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Decision"}
    answer = schemas["Decision"]
    assert {"outputs", "version", "bundle_sha256", "decision_id", "as_of", "period"} <= set(answer["properties"])
    assert {"outputs", "version", "bundle_sha256", "decision_id", "as_of"} <= set(answer["required"])
    assert "period" not in answer["required"]
    assert decide["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Refusal"}
    assert set(schemas["Problem"]["properties"]) == {"loc", "msg", "type"}
    batch = spec["paths"]["/v1/protocols/{pid}/decide/batch"]["post"]["responses"]["200"]
    assert batch["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/BatchDecision"}

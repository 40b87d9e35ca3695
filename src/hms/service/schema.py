"""The decision service's request and answer shapes, for its OpenAPI document (and its answers' contract).

Request bodies are read by body.py, not by FastAPI (bounded: a 413 before an oversized body is parsed, a
422 for a number past 2**53), so FastAPI cannot see their shape from the handler. These models say it
in the OpenAPI (``request_body``, used as ``openapi_extra``), and describe the answers as ``response_model``
and the refusals (``Refusal``) for every 4xx. What ``input`` holds depends on the protocol: its declared
inputs, listed with their types in the protocol (``GET /v1/protocols`` names the version in force).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hms.service.explanation import DESCRIPTION as EXPLAIN
from hms.service.explanation import Explanation
from hms.service.limits import MAX_BATCH

AS_OF = "ISO 8601 date-time with a timezone; the law in force then answers (default: now)"
PERIOD = "the period a dated protocol is evaluated for: a month (2026-03) or a year (2026); default: as_of's"


class DecideRequest(BaseModel):
    """One decision: the protocol's declared inputs, and optionally when and for which period."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] = Field(
        description="the protocol's declared inputs by name; a household protocol: {household: {…}, members: [{…}]}",
        examples=[{"household_size": 4, "household_income": 40000, "county_fire_declared": True}],
    )
    as_of: str | None = Field(None, description=AS_OF, examples=["2026-11-23T08:18:00-05:00"])
    period: str | None = Field(None, description=PERIOD, examples=["2026-03"])
    explain: bool = Field(False, description=EXPLAIN)


class BatchRequest(BaseModel):
    """Up to MAX_BATCH decisions under the same law and period."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[dict[str, Any]] = Field(description="one object of declared inputs per decision", max_length=MAX_BATCH)
    as_of: str | None = Field(None, description=AS_OF)
    period: str | None = Field(None, description=PERIOD)
    explain: bool = Field(False, description=EXPLAIN + "; each answer its own")


class Answer(BaseModel):
    """What one decision says, and which law said it (version and exact bundle hash)."""

    outputs: dict[str, Any] = Field(description="the protocol's declared outputs; a member rule's is a list")
    explanation: Explanation | None = Field(None, description="with explain: true, why, provision by provision")
    period: str | None = Field(None, description="the period evaluated (dated protocols only)")
    version: int
    bundle_sha256: str = Field(description="the bundle in force, the exact law this answer came from")
    decision_id: str = Field(description="unique per answer, for the citizen's file and the audit")


class Decision(Answer):
    protocol: str
    environment: str
    as_of: str = Field(description="the instant whose law answered")


class BatchDecision(BaseModel):
    protocol: str
    environment: str
    as_of: str
    results: list[Answer] = Field(description="one answer per input, in order")


class Problem(BaseModel):
    loc: list[str | int] = Field(description='the place, e.g. ["body", "input", "household_size"]')
    msg: str
    type: str


class Refusal(BaseModel):
    """Every refusal (400, 404, 413, 422, 431, 503): FastAPI's validation-error shape, one entry per problem."""

    detail: list[Problem]


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the JSON request body of a route that reads its body itself."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


REFUSALS: dict[int | str, dict[str, Any]] = {
    status: {"model": Refusal, "description": what}
    for status, what in [(400, "malformed JSON"), (404, "unknown protocol, or none in force at as_of"),
                         (413, "body or batch too large"), (422, "an invalid field: every one, each with its loc")]
}

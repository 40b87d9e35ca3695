"""The typed contract of every change: what the HMS API takes and answers, and what ``--json`` prints.

One model per request and per result, shared by three callers: ``hms.actions`` builds the results, the
API's routers declare them (so the OpenAPI document is complete), and the CLI prints them — whether it
acted on the registry itself (embedded mode) or asked the API (``hms login``). ``lines`` are the human
lines the CLI prints without ``--json``; they are built where the change is made, so a client needs
neither the registry nor the pipeline's time zone to say what happened.

The field names are the ones ``--json`` printed before the API existed: pipeline XComs and scripts read them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Decision = Literal["approve", "reject"]
MAX_REF = 200
MAX_COMMENT = 4000
MAX_POLICY_TEXT = 256 * 1024


# defer_build: a model's validator is built when first used, not at import — the CLI as a client uses two of
# these per command, and building all of them would cost the rollback path ~80 ms (bench/bench_service.py).
class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class _Model(BaseModel):
    model_config = ConfigDict(defer_build=True)


class _Out(_Model):
    ok: bool = True
    lines: list[str] = Field(default_factory=list, description="what the CLI prints without --json")


# ---- who is asking ----------------------------------------------------------------------------------------


class PrincipalOut(_Model):
    name: str
    via: Literal["airflow-token", "os-account", "pipeline"]
    run_id: str | None = None
    on_behalf_of: str | None = None


class WhoAmIOut(_Out):
    principal: PrincipalOut
    roles: list[str]
    policy_sha256: str | None


# ---- bundles ----------------------------------------------------------------------------------------------


class PushIn(_In):
    bundle_base64: str = Field(..., min_length=1, description="the bundle (pkg.tgz) bytes, base64")
    source: str = Field("upload", max_length=500, description="where the client read it (for messages)")


class NextStepOut(_Model):
    starts: bool
    reason: str | None = None
    intake_dag_id: str | None = None
    dag_id: str | None = None
    run_id: str | None = None
    without_airflow: str | None = None


class PushOut(_Out):
    id: str
    sha256: str
    new: bool
    next: NextStepOut


# ---- reviews ----------------------------------------------------------------------------------------------


class ReviewIn(_In):
    ref: str = Field(..., min_length=1, max_length=MAX_REF,
                     description="protocol id (its bundle awaiting review), sha256, unique prefix, or id@version")
    decision: Decision
    role: str | None = Field(None, max_length=100, description="default: the clerk's one role still missing")
    comment: str = Field("", max_length=MAX_COMMENT)
    user: str | None = Field(None, max_length=200, description="if given, must name the authenticated caller")


class Approver(_Model):
    user: str
    role: str


class Rejection(_Model):
    user: str
    role: str
    comment: str


class ApprovalStatusOut(_Model):
    satisfied: bool
    rejected: bool
    approvers: list[Approver]
    missing_roles: list[str]
    still_needed: int
    rejections: list[Rejection]
    summary: str


class ReviewOut(_Out):
    sha256: str
    id: str
    user: str
    role: str
    decision: Decision
    status: ApprovalStatusOut


# ---- deployments ------------------------------------------------------------------------------------------


class ChangeOut(_Model):
    """One environment's change (``hms.deployments.Change``)."""

    environment: str
    protocol_id: str
    version: int
    bundle_sha256: str
    state: str
    activate_at: str
    previous_sha256: str | None
    deployment_id: int | None
    effective_at: str | None
    late: bool
    ended_at: str | None
    takes_effect_at: str


class DeployIn(_In):
    ref: str = Field(..., min_length=1, max_length=MAX_REF)
    environment: str = Field(..., min_length=1, max_length=63)
    schedule: str | None = Field(None, max_length=100)
    run_id: str | None = Field(None, max_length=250)


class DeployOut(_Out, ChangeOut):
    kubernetes: dict[str, Any] | None = None


class RollbackIn(_In):
    protocol: str = Field(..., min_length=1, max_length=MAX_REF, description="protocol id (or a bundle ref of it)")
    environment: str | None = Field(None, max_length=63, description="default: the last environment")
    to: str = Field("previous", max_length=20, description="'previous' or a version number")


class RollbackOut(_Out, ChangeOut):
    """The change now in force; ``finished_earlier_rollback`` when this call only mirrored an earlier one."""

    finished_earlier_rollback: bool = False
    kubernetes: dict[str, Any] | None = None


class RunRollbackIn(_In):
    run: str = Field(..., min_length=1, max_length=250)


class RunRollbackOut(_Out):
    rolled_back: list[ChangeOut]
    kubernetes: list[dict[str, Any]] | None = None


# ---- runs -------------------------------------------------------------------------------------------------


class AbortIn(_In):
    reason: str = Field("aborted by ops", max_length=2000)
    user: str | None = Field(None, max_length=200, description="if given, must name the authenticated caller")


class RunStateOut(_Model):
    run_id: str
    state: str
    started_at: str
    started_by: str
    ended_at: str | None
    ended_by: str | None
    reason: str | None


class AbortOut(_Out):
    run: RunStateOut
    undone: list[ChangeOut]
    already_aborted: bool
    environments: list[str]
    by: PrincipalOut
    kubernetes: list[dict[str, Any]] | None = None


# ---- the pinned policy ------------------------------------------------------------------------------------


class PolicyApplyIn(_In):
    text: str = Field(..., min_length=1, max_length=MAX_POLICY_TEXT, description="the pipeline config file")
    source: str = Field(..., min_length=1, max_length=500, description="its path, as the audit records it")


class PolicyApplyOut(_Out):
    sha256: str
    changed: bool
    source: str
    applied_by: str
    previous_sha256: str | None


# ---- errors -----------------------------------------------------------------------------------------------


class ErrorOut(_Model):
    """Every refusal: what, which field, the HTTP status, and the exit code the CLI then returns."""

    detail: str
    field: str | None = None
    status: int
    exit_code: int = 2

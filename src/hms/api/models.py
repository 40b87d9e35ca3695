"""The typed contract of every change: what the HMS API takes and answers, and what ``--json`` prints.

One model per request and per result, shared by three callers: ``hms.actions`` builds the results, the
API's routers declare them (so the OpenAPI document is complete), and the CLI prints them — whether it
acted on the registry itself (embedded mode) or asked the API (``hms login``). ``lines`` are the human
lines the CLI prints without ``--json``; they are built where the change is made, so a client needs
neither the registry nor the pipeline's time zone to say what happened.

The field names are the ones ``--json`` printed before the API existed: pipeline XComs and scripts read them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

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
    ref: str = Field(
        ...,
        min_length=1,
        max_length=MAX_REF,
        description="protocol id (its bundle awaiting review), sha256, unique prefix, or id@version",
    )
    decision: Decision
    role: str | None = Field(None, max_length=100, description="default: the clerk's one role still missing")
    comment: str = Field("", max_length=MAX_COMMENT)
    user: str | None = Field(None, max_length=200, description="if given, must name the authenticated caller")
    envelope: str | None = Field(
        None,
        max_length=16_384,
        description="the review signed with the clerk's own key (DSSE; hms rule review "
        "--sign-with): kept as the evidence instead of the server's signature",
    )


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
    reason: str | None = Field(
        None,
        max_length=500,
        description="why: written with who and when on the Airflow run that deployed what this undoes",
    )


class RollbackOut(_Out, ChangeOut):
    """The change now in force; ``finished_earlier_rollback`` when this call only mirrored an earlier one."""

    finished_earlier_rollback: bool = False
    kubernetes: dict[str, Any] | None = None


class RunRollbackIn(_In):
    run: str = Field(..., min_length=1, max_length=250)
    reason: str | None = Field(
        None, max_length=500, description="why: written with who and when on the Airflow run this undoes"
    )


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


# ---- the clerk page and the ops view (hms.web.reviews) ------------------------------------------------------
# What the browser page's script and the page tests read: the shapes hms.web.reviews builds, field for field.

MAX_BOARD_COMMENT = 2000  # hms.web.reviews.MAX_COMMENT: a comment typed on the clerk page


class DecisionIn(_In):
    """``POST /api/reviews/{sha256}/approve|reject``: the clerk page's decision on one exact bundle hash."""

    comment: str = Field("", max_length=MAX_BOARD_COMMENT, description="required (non-blank) to reject")
    role: str | None = Field(None, max_length=100, description="default: the clerk's one role still missing")


class DecisionOut(_Model):
    sha256: str
    protocol_id: str
    version: int
    user: str
    role: str
    decision: Decision
    status: ApprovalStatusOut


class LoggedDecisionOut(_Model):
    """One answer of a decision service as its log holds it (hms.decision_query): the input masked per data
    class as it was written (personal fields as keyed hashes, sensitive ones absent)."""

    decision_id: str
    environment: str
    protocol: str
    version: int
    bundle_sha256: str
    decided_at: str = Field(description="ISO 8601, when the service answered")
    as_of: str = Field(description="ISO 8601, the instant the answer was for")
    period: str | None
    latency_ms: float
    batch_id: str | None
    key_id: str | None = Field(description="the keyed hash's key (its id only) the personal fields were hashed with")
    input: dict[str, Any]
    outputs: dict[str, Any]


class LoggedDecisionsOut(_Model):
    count: int
    decisions: list[LoggedDecisionOut] = Field(description="newest first")


class ReviewRecordOut(_Model):
    user: str
    role: str
    decision: Decision
    comment: str


class CheckStampOut(_Model):
    ok: bool
    at: str


class LivePlaceOut(_Model):
    """The bundle is the version in force in this environment (since its activation)."""

    environment: str
    state: Literal["live"]
    since: str
    note: str | None


class PendingPlaceOut(_Model):
    """The bundle waits to come into force here at ``activate_at``."""

    environment: str
    state: Literal["pending"]
    activate_at: str
    note: str | None


class EndedPlaceOut(_Model):
    """The bundle was here (or waited to be) and left: rolled back, its activation cancelled, or superseded."""

    environment: str
    state: Literal["rolled_back", "cancelled", "superseded"]
    ended_at: str | None
    run_id: str | None


class AbsentPlaceOut(_Model):
    """The bundle was never in force nor waiting here."""

    environment: str
    state: Literal["absent"]


BundlePlaceOut = Annotated[
    LivePlaceOut | PendingPlaceOut | EndedPlaceOut | AbsentPlaceOut, Field(discriminator="state")
]


class ProtocolChangeOut(_Model):
    """One change between two protocol versions (``hms.protocol_diff.Change``)."""

    section: str
    kind: str
    path: str
    old: Any = None
    new: Any = None
    date: str | None = None
    key: str | None = None
    sentence: str


class CostOut(_Model):
    """This bundle's simulated cost against prod's (``hms.cost_baseline.CostComparison``), in cents."""

    currency: str
    cost_cents: float
    cap_cents: float | None
    baseline_cents: float | None
    baseline_version: int | None
    same_run: bool
    delta_cents: float | None
    delta_pct: float | None
    axis_max_cents: float
    per_period: str
    sentence: str


class DecileMovementOut(_Model):
    """One income decile's movement against the baseline (``hms.simulate``: money in dollars)."""

    decile: int
    newly_eligible: float
    losing_eligibility: float
    winners: float
    losers: float
    gains: float
    losses: float
    change: float | None = None
    average_change: float | None = Field(None, description="per household of the decile, all of them")


class DistributionOut(_Model):
    """Who gains and who loses against the baseline the recorded simulation ran (weighted households)."""

    baseline_sha256: str | None
    baseline_version: int
    newly_eligible: float
    losing_eligibility: float
    winners: float
    losers: float
    gains_cents: float
    losses_cents: float
    cost_delta_cents: float
    by_income_decile: list[DecileMovementOut] | None


class LifeEventOut(_Model):
    """One thing that happened to a bundle (``hms.web.bundle_life.LifeEvent``)."""

    at: str
    kind: Literal[
        "pushed", "check", "review", "deploy", "activation", "move", "superseded", "rollback", "run", "published"
    ]
    sentence: str = Field(..., description="plain words; times in the pipeline's zone, the zone named")
    actor: str
    environment: str | None
    run_id: str | None
    stage: str | None = Field(..., description="the pipeline step it came from (hms.web.bundle_life.STAGES)")
    ok: bool | None
    reason: str | None


class BundleCardOut(_Model):
    """One bundle as a clerk sees it (``hms.web.reviews.BundleView``); checks by kind (test, scan, chaos)."""

    sha256: str
    protocol_id: str
    version: int
    title: str
    author: str
    effective_at: str = Field(..., description="the protocol's own effective time, as written in it")
    effective_passed: bool
    state: Literal["waiting", "approved", "rejected"]
    approval: ApprovalStatusOut
    reviews: list[ReviewRecordOut]
    checks: dict[str, CheckStampOut]
    live_in_prod: int | None = Field(..., description="the version in force in the last environment")
    environments: list[BundlePlaceOut]
    changes_vs_prod: list[ProtocolChangeOut] = Field(..., description="hms.protocol_diff against the version in prod")
    previous_version: int | None = Field(..., description="the protocol's previous recorded version")
    changes_vs_previous: list[ProtocolChangeOut] = Field(..., description="hms.protocol_diff against previous_version")
    cost: CostOut | None = Field(..., description="the simulated cost against prod's (None: none recorded)")
    distribution: DistributionOut | None = Field(
        ..., description="winners and losers against the simulated baseline (None: no baseline simulated)"
    )
    life: list[LifeEventOut] = Field(..., description="everything that happened to the bundle, oldest first")
    waiting_since: str | None = Field(..., description="when its review began (its tests and scan passed)")
    review_deadline: str | None = Field(..., description="when the run stops waiting for the review")
    run_stopped: LifeEventOut | None = Field(..., description="its newest run's abort, before any decision")


class ReviewBoardOut(_Model):
    """``GET /api/reviews``: the newest version of each protocol, waiting for review or already decided."""

    user: str
    roles: list[str]
    pending: list[BundleCardOut]
    decided: list[BundleCardOut]


class LiveVersionOut(_Model):
    version: int
    sha256: str
    since: str
    note: str | None


class PendingActivationOut(_Model):
    version: int
    sha256: str
    activate_at: str
    run_id: str | None
    note: str | None


class EnvironmentOpsOut(_Model):
    environment: str
    live: LiveVersionOut | None
    pending: list[PendingActivationOut]


class MoveRecordOut(_Model):
    """A scheduler's move that ended this row (state cancelled) or made it: from → to, who, when, why."""

    moved_from: str
    moved_to: str
    by: str
    at: str
    reason: str | None = Field(..., description="null for a move recorded before reasons were required")
    sentence: str = Field(..., description="the history line, times in the pipeline's zone")


class DeploymentRowOut(_Model):
    """One deployment row, newest first."""

    environment: str
    version: int
    sha256: str
    state: str = Field(..., description="pending | live | superseded | rolled_back | cancelled")
    activate_at: str
    ended_at: str | None
    created_at: str
    created_by: str
    run_id: str | None
    note: str | None
    move: MoveRecordOut | None = Field(None, description="the scheduler's move behind this row, if any")


class ProtocolOpsOut(_Model):
    protocol_id: str
    environments: list[EnvironmentOpsOut]
    history: list[DeploymentRowOut]


class ProtocolsOut(_Model):
    """``GET /api/protocols``: per protocol, what each environment serves, pending activations, history."""

    timezone: str
    protocols: list[ProtocolOpsOut]


class MoveIn(_In):
    """``POST /api/activations/{sha256}/move``: a new time for a pending activation (schedulers)."""

    effective_at: str = Field(
        ...,
        min_length=1,
        max_length=100,
        description="read like --schedule: HH:MM in the pipeline's zone, ISO, now, +Ns; "
        "with zone: a date-time picker's YYYY-MM-DDTHH:MM in that zone",
    )
    zone: str | None = Field(
        None, max_length=64, description="the IANA zone a picker's wall time (no offset) is read in"
    )
    environment: str | None = Field(None, max_length=63, description="default: the last environment")
    reason: str = Field(
        ...,
        min_length=1,
        max_length=500,
        description="why the legal effective time moves (audited; shown in the history)",
    )


class _MovedFrom(_Model):
    moved_from: str = Field(..., description="the activation time before the move")


class MoveOut(ChangeOut, _MovedFrom):  # fields of the last base first: moved_from leads, as it always did
    """The activation at its new time (a new deployment row), and the time it had before."""


# ---- errors -----------------------------------------------------------------------------------------------


class ErrorOut(_Model):
    """Every refusal: what, which field, the HTTP status, and the exit code the CLI then returns."""

    detail: str
    field: str | None = None
    status: int
    exit_code: int = 2

"""Pipeline settings (``.hms-ci/policy-pipeline.yml``): environments, approvals, windows, chaos, execution.

Loaded once per command, validated by a JSON Schema so a typo names its field and
exits 2 instead of silently using a default. Everything that asks "is this time
frozen?" or "what approvals does this protocol need?" asks here.

Importing jsonschema costs a command ~60 ms, which the emergency path (``hms rule
rollback``) must not pay on every call. A text that passed the schema once leaves a
marker named by the hash of (schema, text) under ``$HMS_HOME/cache``; the same text
against the same schema cannot fail, so later commands skip the validator. Any edit
to the file or the schema changes the hash and validates again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hms import yamlsafe
from hms.approvals import ApprovalPolicy
from hms.errors import BadInput

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PATH = ROOT / ".hms-ci" / "policy-pipeline.yml"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NAME = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"}
_HHMM = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}
_AGE = {"type": "string", "pattern": "^[1-9][0-9]*[dhm]$"}  # 400d, 12h, 90m (hms.decision_query.parse_age)

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "environments"],
    "properties": {
        "version": {"const": 1},
        "timezone": {"type": "string"},
        "environments": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": _NAME,
                    "urls": {"type": "array", "items": {"type": "string", "pattern": "^https?://"}},
                    "namespace": _NAME,
                },
            },
        },
        "approvals": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "required": {"type": "integer", "minimum": 1},
                "roles": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "timeout_hours": {"type": "number", "exclusiveMinimum": 0},
                "poll_seconds": {"type": "number", "exclusiveMinimum": 0},
            },
        },
        "users": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string", "minLength": 1}},
        },
        # The allowed signers: a clerk listed here signs their own decisions (`hms rule review --sign-with`), and
        # then only a signature by one of these keys counts for them (hms.attest.keys.with_signers).
        "signers": {
            "type": "object",
            "additionalProperties": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["keyid", "key"],
                    "properties": {
                        "keyid": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                        "key": {"type": "object"},
                        "retired_at": {"type": "string", "format": "date-time"},
                        "revoked_at": {"type": "string", "format": "date-time"},
                    },
                },
            },
        },
        "compliance": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"rule_sets": {"type": "array", "items": {"enum": ["privacy", "ethics", "legal"]}}},
        },
        "chaos": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "environment": _NAME,
                "time": {"type": "string", "pattern": "^[0-9]+[smh]$"},
                "kill_fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "min_health": {"type": "number", "minimum": 0, "maximum": 1},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 64},
            },
        },
        "freeze_windows": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["reason"],
                "properties": {
                    "reason": {"type": "string"},
                    "start": {"type": "string", "format": "date-time"},
                    "end": {"type": "string", "format": "date-time"},
                    "weekly": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["days", "from", "to"],
                        "properties": {
                            "days": {"type": "array", "minItems": 1, "items": {"enum": list(DAYS)}},
                            "from": _HHMM,
                            "to": _HHMM,
                        },
                    },
                    "environments": {"type": "array", "items": _NAME},
                },
                "oneOf": [{"required": ["start", "end"]}, {"required": ["weekly"]}],
            },
        },
        "decision_log": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"retention": _AGE, "replay_window": _AGE},
        },
        "execution": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "mode": {"enum": ["local", "kubernetes", "compose"]},
                "namespace": _NAME,
                "compose_project": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"},
                "image": {"type": "string", "minLength": 1},
                "in_cluster": {"type": "boolean"},
            },
        },
    },
}


@dataclass(frozen=True)
class Environment:
    name: str
    urls: tuple[str, ...] = ()
    namespace: str = ""


@dataclass(frozen=True)
class Approvals:
    required: int = 2
    roles: tuple[str, ...] = ("legal", "budget")
    timeout_hours: float = 72.0
    poll_seconds: float = 30.0

    @property
    def policy(self) -> ApprovalPolicy:
        return ApprovalPolicy(self.required, self.roles)


@dataclass(frozen=True)
class Chaos:
    environment: str = "preprod"
    time: str = "10s"
    kill_fraction: float = 0.1
    min_health: float = 0.99
    replicas: int = 3


@dataclass(frozen=True)
class Compliance:
    rule_sets: tuple[str, ...] = ("privacy", "ethics", "legal")


@dataclass(frozen=True)
class DecisionLogSettings:
    """How long the decision services keep what they answered, and how far back a candidate's replay reads.

    Policy, not a flag: the retention decides what an auditor can still ask about, and the replay window what
    evidence a clerk approves on (the pipeline's ``test.replay`` step reads the pinned policy's)."""

    retention: str = "400d"
    replay_window: str = "30d"


@dataclass(frozen=True)
class Execution:
    mode: str = "local"  # compose: steps on the worker, chaos on the compose project's containers
    namespace: str = "hms-pipeline"
    compose_project: str = "hms"  # compose mode: whose hms-api-<env> containers the chaos job kills
    image: str = "hms-pipeline:0.1.0"
    in_cluster: bool = True


@dataclass(frozen=True)
class FreezeWindow:
    """Either one absolute interval (``start``/``end``) or a weekly recurring one in the configured zone."""

    reason: str
    environments: tuple[str, ...] = ()  # empty: every environment
    start: datetime | None = None
    end: datetime | None = None
    days: tuple[str, ...] = ()
    from_time: time | None = None
    to_time: time | None = None
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))

    def applies_to(self, env: str) -> bool:
        return not self.environments or env in self.environments

    def contains(self, at: datetime) -> bool:
        if self.start is not None and self.end is not None:
            return self.start <= at < self.end
        local = at.astimezone(self.tz)
        assert self.from_time is not None and self.to_time is not None
        for day_offset in (0, -1):  # a window such as 22:00–02:00 starts the day before
            d = (local + timedelta(days=day_offset)).date()
            if DAYS[d.weekday()] not in self.days:
                continue
            begin = datetime.combine(d, self.from_time, self.tz)
            finish = datetime.combine(d, self.to_time, self.tz)
            if finish <= begin:
                finish += timedelta(days=1)
            if begin <= local < finish:
                return True
        return False

    def __str__(self) -> str:
        if self.start is not None:
            return f"'{self.reason}' ({self.start.isoformat()} – {self.end.isoformat() if self.end else '?'})"
        return f"'{self.reason}' (weekly {','.join(self.days)} {self.from_time:%H:%M}–{self.to_time:%H:%M})"


@dataclass(frozen=True)
class PipelineConfig:
    source: str
    timezone: str
    environments: tuple[Environment, ...]
    approvals: Approvals
    users: dict[str, tuple[str, ...]] | None
    compliance: Compliance
    chaos: Chaos
    freeze_windows: tuple[FreezeWindow, ...]
    execution: Execution
    decision_log: DecisionLogSettings = DecisionLogSettings()
    # user → their public keys as the policy lists them (securesystemslib form; parsed by hms.attest.keys, which
    # this module does not import: reading a policy must not load the crypto stack)
    signers: tuple[tuple[str, tuple[dict[str, Any], ...]], ...] = ()
    sha256: str = ""  # of the text it was parsed from: the digest `hms config apply` pins and gates record

    @property
    def environment_names(self) -> list[str]:
        return [e.name for e in self.environments]

    @property
    def user_roles(self) -> dict[str, tuple[str, ...]] | None:
        return self.users

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def environment(self, name: str) -> Environment:
        for e in self.environments:
            if e.name == name:
                return e
        raise BadInput(f"unknown environment {name!r} (known: {', '.join(self.environment_names)})", where="--env")

    def namespace_for(self, env: str) -> str:
        return self.environment(env).namespace or f"hms-{env}"


def config_path(path: str | Path | None = None) -> Path:
    """The path given, else ``$HMS_PIPELINE_CONFIG``, else the source checkout's, else the working directory's.

    An installed hms (the image: site-packages, include/ and .hms-ci/ copied to its working directory
    /opt/hms) has no checkout above its code, as ``policy_dir`` and the population catalog also allow.
    """
    if path or os.environ.get("HMS_PIPELINE_CONFIG"):
        return Path(path or os.environ["HMS_PIPELINE_CONFIG"])
    here = Path.cwd() / ".hms-ci" / "policy-pipeline.yml"
    return DEFAULT_PATH if DEFAULT_PATH.is_file() or not here.is_file() else here


def load_pipeline_config(path: str | Path | None = None) -> PipelineConfig:
    p = config_path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise BadInput(f"cannot read pipeline config: {e.strerror}", where=str(p)) from None
    return parse_pipeline_config(text, str(p))


def parse_pipeline_config(text: str, source: str = "<pipeline config>") -> PipelineConfig:
    doc = yamlsafe.load_text(text, source)
    data = doc.data
    _check_schema(doc, text)
    tzname = data.get("timezone", "UTC")
    try:
        tz = ZoneInfo(tzname)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadInput(f"timezone: unknown time zone {tzname!r}", where=doc.where(("timezone",))) from None
    envs = tuple(
        Environment(e["name"], tuple(e.get("urls", ())), e.get("namespace", "")) for e in data["environments"]
    )
    names = [e.name for e in envs]
    if len(set(names)) != len(names):
        raise BadInput("environments: names must be unique", where=doc.where(("environments",)))
    windows = []
    for i, w in enumerate(data.get("freeze_windows", [])):
        for env in w.get("environments", ()):
            if env not in names:
                raise BadInput(
                    f"freeze_windows[{i}].environments: unknown environment {env!r}",
                    where=doc.where(("freeze_windows", i, "environments")),
                )
        if "start" in w:
            start, end = (_aware(w[k], doc, ("freeze_windows", i, k)) for k in ("start", "end"))
            if end <= start:
                raise BadInput(f"freeze_windows[{i}]: end must be after start", where=doc.where(("freeze_windows", i)))
            windows.append(FreezeWindow(w["reason"], tuple(w.get("environments", ())), start=start, end=end, tz=tz))
        else:
            wk = w["weekly"]
            windows.append(
                FreezeWindow(
                    w["reason"],
                    tuple(w.get("environments", ())),
                    days=tuple(wk["days"]),
                    from_time=time.fromisoformat(wk["from"]),
                    to_time=time.fromisoformat(wk["to"]),
                    tz=tz,
                )
            )
    chaos = Chaos(**data.get("chaos", {}))
    if chaos.environment not in names:
        raise BadInput(f"chaos.environment: unknown environment {chaos.environment!r}", where=doc.where(("chaos",)))
    appr = data.get("approvals", {})
    users = data.get("users")
    return PipelineConfig(
        source=source,
        timezone=tzname,
        environments=envs,
        approvals=Approvals(
            required=appr.get("required", 2),
            roles=tuple(appr.get("roles", ("legal", "budget"))),
            timeout_hours=float(appr.get("timeout_hours", 72)),
            poll_seconds=float(appr.get("poll_seconds", 30)),
        ),
        users={u: tuple(r) for u, r in users.items()} if users is not None else None,
        compliance=Compliance(tuple(data.get("compliance", {}).get("rule_sets", ("privacy", "ethics", "legal")))),
        chaos=chaos,
        freeze_windows=tuple(windows),
        execution=Execution(**data.get("execution", {})),
        decision_log=DecisionLogSettings(**data.get("decision_log", {})),
        signers=tuple((u, tuple(ks)) for u, ks in sorted(data.get("signers", {}).items())),
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


def _schema_marker(text: str) -> Path:
    from hms.registry.location import hms_home

    # The validator's rules are part of the key: a marker from before the ECMA "$" fix does not count.
    key = json.dumps(SCHEMA, sort_keys=True).encode() + b"\0ecma-pattern-1\0" + text.encode()
    digest = hashlib.sha256(key).hexdigest()
    return hms_home() / "cache" / f"pipeline-config-{digest}.valid"


def _check_schema(doc: yamlsafe.Document, text: str) -> None:
    """Refuse a config that breaks the schema, naming the first bad field (see the module doc for the marker)."""
    marker = _schema_marker(text)
    if marker.is_file():
        return
    from hms.schema_check import validator_class

    errors = sorted(validator_class()(SCHEMA).iter_errors(doc.data), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        path = ".".join(str(x) for x in e.absolute_path) or "(top level)"
        raise BadInput(f"{path}: {e.message}", where=doc.where(tuple(e.absolute_path)))
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:  # a read-only HMS_HOME only costs the next command the validator again
        pass


def _aware(value: str, doc: yamlsafe.Document, path: tuple) -> datetime:
    try:
        dt = datetime.fromisoformat(str(value))
    except ValueError:
        raise BadInput(f"{'.'.join(map(str, path))}: not an ISO date-time: {value!r}", where=doc.where(path)) from None
    if dt.tzinfo is None:
        raise BadInput(f"{'.'.join(map(str, path))}: must carry a timezone", where=doc.where(path))
    return dt


def effective_approval_policy(config: PipelineConfig, protocol: Any) -> ApprovalPolicy:
    """The configured policy, tightened (never loosened) by the protocol's own ``approvals`` and by the
    roles its declarations require (an input's ``exemption`` needs the legal role, hms.declarations)."""
    from hms.declarations import required_review_roles

    policy = config.approvals.policy.tightened_by(protocol.approvals)
    extra = required_review_roles(protocol)
    return policy.tightened_by({"roles": list(extra)}) if extra else policy


def in_freeze(config: PipelineConfig, at: datetime, env: str) -> FreezeWindow | None:
    """The freeze window ``at`` falls in for ``env``, if any."""
    for w in config.freeze_windows:
        if w.applies_to(env) and w.contains(at):
            return w
    return None

"""Which recorded checks a bundle needs before it may enter an environment, and which it lacks.

A deploy is allowed on evidence, not on the say-so of whoever runs it: the registry's ``checks``
table must hold, for the exact bundle hash, a passing ``test`` (the cases through both backends
and the budget simulation on the protocol's own population: ``hms policy test --record``) and a
passing ``scan`` (``hms scan --record`` with the repository's policies and every configured rule
set), and past the chaos environment a passing ``chaos`` (``hms chaos run --record``, recorded
for every bundle in force in that environment while it survived the faults). The newest result
of each kind is the one that counts: a later failure withdraws an earlier pass.

Only hms.deployments asks here (``check_order``), so the CLI, the pipeline and the web share one
answer; recording (what may be recorded at all) is the commands' side, see ``refuse_override``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from hms.errors import BadInput
from hms.pipeline_config import PipelineConfig
from hms.registry import store

TEST, SCAN, CHAOS = "test", "scan", "chaos"

# What to run to record each kind, for the refusal message ("run … --record").
HOW_TO_RECORD = {
    TEST: "hms policy test sha256:{sha} --record",
    SCAN: "hms scan sha256:{sha} --record",
    CHAOS: "hms chaos run --target {chaos_env} --record (with the bundle in force there)",
}


@dataclass(frozen=True)
class MissingCheck:
    """A kind of check with no passing newest result for the bundle."""

    kind: str
    sha256: str
    failed: bool  # a result exists but the newest one failed
    how: str

    def message(self) -> str:
        what = f"the newest recorded {self.kind} of sha256:{self.sha256} failed" if self.failed else (
            f"no recorded passing {self.kind} for sha256:{self.sha256}")
        return f"{what}; run {self.how}"


def required_kinds(config: PipelineConfig, env: str) -> tuple[str, ...]:
    """The checks ``env`` needs: test and scan everywhere; chaos after the chaos environment too."""
    names = config.environment_names
    chaos_env = config.chaos.environment
    after_chaos = chaos_env in names and names.index(env) > names.index(chaos_env)
    return (TEST, SCAN, CHAOS) if after_chaos else (TEST, SCAN)


@dataclass(frozen=True)
class PromoteSteps:
    """The checks a promote runs itself because the bundle has no passing recorded result of them yet.

    What the pipeline's stages do, in the same places: test and scan before the first environment, the
    chaos experiment in the chaos environment before the targets after it. Each is run with the governed
    settings and recorded (``… --record``), so a hand-run promote takes the pipeline's path instead of
    stopping short; a failing step fails the promote (before anything is written, or with its rollback).
    """

    first: tuple[str, ...]  # kinds run before any target is written
    chaos_at: str | None  # the target after whose deploy the chaos experiment runs

    def covers(self, env: str, targets: list[str]) -> tuple[str, ...]:
        """The kinds ``env``'s gate may find missing now because this promote records them before ``env``."""
        late = self.chaos_at is not None and targets.index(env) > targets.index(self.chaos_at)
        return (*self.first, CHAOS) if late else self.first


def promote_steps(s: Session, sha256: str, config: PipelineConfig, targets: list[str]) -> PromoteSteps:
    latest = store.latest_checks(s, sha256)
    needed = {k for env in targets for k in required_kinds(config, env)}
    first = tuple(k for k in (TEST, SCAN) if k in needed and not (k in latest and latest[k].ok))
    chaos_env = config.chaos.environment
    chaos_at = None
    if chaos_env in targets and not (CHAOS in latest and latest[CHAOS].ok):
        after = targets[targets.index(chaos_env) + 1:]
        if any(CHAOS in required_kinds(config, env) for env in after):
            chaos_at = chaos_env
    return PromoteSteps(first, chaos_at)


def missing(s: Session, sha256: str, config: PipelineConfig, env: str) -> list[MissingCheck]:
    """The required checks of ``env`` whose newest recorded result for ``sha256`` is absent or failing."""
    latest = store.latest_checks(s, sha256)
    out = []
    for kind in required_kinds(config, env):
        c = latest.get(kind)
        if c is None or not c.ok:
            how = HOW_TO_RECORD[kind].format(sha=sha256, chaos_env=config.chaos.environment)
            out.append(MissingCheck(kind, sha256, failed=c is not None, how=how))
    return out


def refuse_override(kind: str, overrides: list[str]) -> None:
    """A check run with settings other than the governed ones may run, but may not be recorded (exit 2).

    An empty policy directory, a subset of the rule sets, another population for the budget or a
    more lenient chaos hypothesis would each produce a green result that proves nothing.
    """
    if overrides:
        raise BadInput(
            f"a {kind} with {', '.join(overrides)} cannot be recorded: a recorded {kind} is evidence for "
            "deploying and must use the governed settings (drop the override, or drop --record)",
            where="--record",
        )

"""When a version comes into force: the protocol's ``effective_at`` is a floor, never a target to backdate.

The reading a lawyer accepts, in one place (deployments, the web's Move, the pipeline's
schedule check and the pages all ask here):
- In the *binding* environment (the last one, prod: where answers have legal effect) a
  version is in force from the later of its protocol's own ``effective_at`` and the
  moment it is put in force — every gate met. A protocol approved after its effective
  date is normal in government; it then takes effect from that moment, *not
  retroactively*, and the record says so.
- Nothing comes into force there before its protocol's ``effective_at``: a requested
  time (``--schedule``, a trigger-form override, a scheduler's Move) earlier than it is
  refused, naming the field.
- No activation is backdated anywhere: a requested time in the past (beyond a small
  clock-skew allowance) is refused; history that decision services already answered
  from must not change.
- Earlier environments (staging, preprod) are rehearsals: they go live when deployed,
  whatever the effective time, so the pipeline can test a rule before its date.
- A rollback takes effect ``PROPAGATION`` after it is recorded (``switch_instant``), not at
  the moment it is recorded: decision services learn of a change by polling, so an instant
  they cannot all know yet would be one the record states and some replica contradicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hms.errors import BadInput

# How far in the past a requested time may lie and still mean "now": the requester's clock and ours differ
# a little, and a "+0s" typed a moment ago must not be refused.
CLOCK_SKEW = timedelta(seconds=5)
# A late activation differs from the effective time by more than this: rounding of "now" is not "late".
_LATE = timedelta(seconds=1)
# How far ahead of the moment it is recorded a rollback (or a withdrawal) takes effect. Every replica of the
# decision service must hold the change before its instant, so that all of them switch by their own clock at
# the instant the registry records (service/timeline.py), exactly as at a scheduled activation. It covers
# the rest of the transaction and its COMMIT, one poll of the generation (service.app.POLL_INTERVAL, 25 ms)
# and the reload, with room for a busy machine; tests/reliability/test_load.py holds it to zero stale answers
# and bench_service to the rollback latency it adds. `hms serve` refuses a poll interval that cannot meet it.
PROPAGATION = timedelta(milliseconds=120)


@dataclass(frozen=True)
class Activation:
    """The instant a deployment comes into force, beside its protocol's own effective time."""

    at: datetime
    effective_at: datetime | None

    @property
    def late(self) -> bool:
        """The effective date had passed when the version was put in force: in force from ``at``, not before."""
        return self.effective_at is not None and self.at - self.effective_at > _LATE


def local(t: datetime, tz: ZoneInfo) -> str:
    """An instant as schedulers read it: the pipeline's zone, named (``2026-12-01 00:00:00 EST``)."""
    return t.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def note(activate_at: datetime, effective_at: datetime | None, tz: ZoneInfo) -> str | None:
    """The plain words a record, the Deploys page and the Reviews card show for a late activation."""
    a = Activation(activate_at, effective_at)
    if not a.late or effective_at is None:
        return None
    return (f"effective date {local(effective_at, tz)} passed; in force from {local(activate_at, tz)}; "
            "not retroactive")


def switch_instant(
    now: datetime, propagation: timedelta = PROPAGATION, *, started: datetime | None = None
) -> datetime:
    """The instant a change written at ``now`` (a rollback, a withdrawal) takes effect: ``now + propagation``,
    plus as long again as its transaction has taken since ``started``.

    Not ``now``: replicas would go on answering from the undone version until they polled, after the
    instant the record states. The extra term is for a starved process: on a busy machine the rest of
    the transaction and its COMMIT take about as long as the part before (measured: 30–180 ms at a
    load average of 3–4, against 5–10 ms quiet), and replicas can only poll what is committed. Never
    earlier than ``now`` (history is append-only): a negative ``propagation`` is a bug, refused.
    """
    if propagation < timedelta(0):
        raise ValueError(f"propagation {propagation} is negative: a switch cannot be backdated")
    spent = max(now - started, timedelta(0)) if started is not None else timedelta(0)
    return now.astimezone(UTC) + propagation + spent


def propagation_covers(poll_interval: float, propagation: timedelta = PROPAGATION) -> bool:
    """Whether replicas polling every ``poll_interval`` seconds learn of a change before its switch instant.

    Half the window is kept for the commit, the reload and a busy scheduler: a replica that polls
    more rarely than that would still answer from the undone version after the recorded instant.
    """
    return 0 < poll_interval <= propagation.total_seconds() / 2


def plan(
    effective_at: datetime,
    requested: datetime | None,
    now: datetime,
    *,
    binding: bool,
    where: str = "--schedule",
) -> Activation:
    """The activation instant for a deployment requested at ``now``; ``requested`` None means "as soon as lawful".

    Raises ``BadInput`` naming ``where`` for a time in the past or, in the binding environment, one
    earlier than the protocol's effective time.
    """
    eff = effective_at.astimezone(UTC)
    if requested is None:
        return Activation(max(eff, now) if binding else now, eff)
    if requested.tzinfo is None:
        raise BadInput("activation time must carry a timezone", where=where)
    req = requested.astimezone(UTC)
    if req < now - CLOCK_SKEW:
        raise BadInput(
            f"{req.isoformat()} is in the past (now {now.isoformat(timespec='seconds')}); "
            "an activation cannot be backdated",
            where=where,
        )
    if binding and req < eff:
        raise BadInput(
            f"{req.isoformat()} is earlier than the protocol's effective time {eff.isoformat()}: "
            "nothing comes into force before its effective date (omit the time to use it)",
            where=where,
        )
    return Activation(max(req, now), eff)

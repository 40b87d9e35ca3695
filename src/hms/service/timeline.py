"""Which version of each protocol is in force at an instant.

Every replica of the decision service holds the same timeline (rebuilt from the
registry when its generation changes) and picks the version by its own clock for
each request. Nobody has to "flip" the replicas at the effective time: they all
switch at ``activate_at`` because they all read the same schedule, so the fleet
never disagrees about which law is in force (up to clock skew).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from hms import run_state
from hms.bundle import Bundle

# Deployment states whose rows take part in the timeline. A rolled-back or
# superseded version was in force until ``ended_at``; a cancelled one never was.
IN_TIMELINE = ("pending", "live", "superseded", "rolled_back")


@dataclass(frozen=True)
class Entry:
    """One deployment of a bundle in one environment."""

    deployment_id: int
    protocol_id: str
    version: int
    sha256: str
    state: str
    activate_at: datetime
    ended_at: datetime | None = None
    run_id: str | None = None  # the pipeline run that made it: a pending row of an aborted run is dropped


@dataclass
class Timeline:
    """Deployments of one protocol in one environment, ordered by activation."""

    protocol_id: str
    entries: list[Entry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.entries.sort(key=lambda e: (e.activate_at, e.deployment_id))
        self._keys = [e.activate_at for e in self.entries]

    def in_force(self, at: datetime) -> Entry | None:
        """The latest deployment activated at or before ``at`` that had not ended by then."""
        i = bisect.bisect_right(self._keys, at)
        while i > 0:
            e = self.entries[i - 1]
            if e.ended_at is None or e.ended_at > at:
                return e
            i -= 1
        return None

    def pending(self, at: datetime) -> list[Entry]:
        return [e for e in self.entries if e.activate_at > at and e.state == "pending"]


@dataclass
class Snapshot:
    """Everything a replica serves: timelines plus the verified bundles they name."""

    environment: str
    generation: int
    timelines: dict[str, Timeline]
    bundles: dict[str, Bundle]
    # Deployment rows left out because their signed statement did not verify (hms.attest.rows): /readyz says so.
    refused: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        environment: str,
        generation: int,
        entries: Iterable[Entry],
        bundles: dict[str, Bundle],
        aborted: Mapping[str, datetime] | None = None,
        refused: Iterable[str] = (),
    ) -> Snapshot:
        """``aborted``: run id → when it was aborted. A pending entry of such a run that was not due before the
        abort never enters the timeline, so no replica switches to it at its instant even if nothing cancelled
        the row (the activation-time check of hms.run_state; the DAG's rollback is not relied on)."""
        gone = dict(aborted or {})
        by_protocol: dict[str, list[Entry]] = {}
        for e in entries:
            if run_state.voided(e.state, e.activate_at, e.run_id, gone):
                continue
            if e.state in IN_TIMELINE:
                by_protocol.setdefault(e.protocol_id, []).append(e)
        return cls(environment, generation, {p: Timeline(p, es) for p, es in by_protocol.items()}, bundles,
                   tuple(refused))

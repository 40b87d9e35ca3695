"""The decision log: every answer a replica gives, written off the request path.

The request only builds an ``Answered`` (references, no copying, no hashing) and offers it to a bounded queue
with ``put_nowait``: a full queue drops the answer and counts it (``dropped["queue_full"]``), it never blocks
or fails the request. One writer thread per replica takes what is queued, masks each input as its protocol
declares (hms.decision_masking: personal inputs keyed-hashed, sensitive and protected dropped, unless the
protocol says otherwise within what the class allows), and inserts the batch in one transaction
(``DatabaseSink``: the ``decisions`` table of the registry, or of ``HMS_DECISION_LOG_URL``). A batch the sink
refuses is dropped and counted (``dropped["sink_error"]``, ``failures``, ``last_error``): ``/readyz`` and
``/metrics`` show it; the replica keeps answering. Every ``prune_every`` the writer deletes rows older than
the retention period.

Why the registry's database and not JSON-lines files: ``hms decisions list/show`` and replay select by
environment, protocol and time, which an index answers; and one replica's files are lost with its pod.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, insert

from hms import clock
from hms.bundle import Bundle
from hms.decision_log_key import LogKey
from hms.decision_masking import Masking
from hms.decision_query import parse_age
from hms.pipeline_config import DecisionLogSettings
from hms.registry.models import LoggedDecision

log = logging.getLogger("hms.service.decision_log")

QUEUE_SIZE = 20_000  # answers waiting for the writer: ~100 s at 200/s before anything is dropped
BATCH_SIZE = 500
FLUSH_INTERVAL = 0.25  # seconds between the writer's batches: ~50 answers a batch at 200/s
PRUNE_EVERY = 3600.0
# a year of decisions and a month to replay a change against: the pipeline config's default, as a duration
DEFAULT_RETENTION = parse_age(DecisionLogSettings().retention, where="decision_log.retention")


@dataclass(frozen=True)
class Answered:
    """One answer as the request path hands it over; masked and serialized by the writer, not here."""

    decision_id: str
    protocol_id: str
    version: int
    bundle_sha256: str
    decided_at: datetime
    as_of: datetime
    period: str | None
    latency_ms: float
    input: Any  # the request's input as received (validated): masked before it is written
    outputs: Mapping[str, Any]
    masking: Masking
    batch_id: str | None = None


class Sink(Protocol):
    """Where logged decisions go (rows as ``decisions`` columns)."""

    def write(self, rows: list[dict[str, Any]]) -> None: ...

    def prune(self, before: datetime) -> int: ...


class DatabaseSink:
    """The ``decisions`` table, one transaction per batch."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url

    def write(self, rows: list[dict[str, Any]]) -> None:
        from hms.registry.db import get_engine

        with get_engine(self.url).begin() as conn:
            conn.execute(insert(LoggedDecision.__table__), rows)

    def prune(self, before: datetime) -> int:
        from hms.registry.db import get_engine

        with get_engine(self.url).begin() as conn:
            return conn.execute(delete(LoggedDecision.__table__).where(LoggedDecision.decided_at < before)).rowcount


@dataclass
class LogStatus:
    """What ``/readyz`` and ``/metrics`` say about the log."""

    enabled: bool
    ok: bool
    written: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    failures: int = 0
    queued: int = 0
    pruned: int = 0
    last_error: str | None = None
    retention_days: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "ok": self.ok, "written": self.written, "dropped": dict(self.dropped),
                "failures": self.failures, "queued": self.queued, "pruned": self.pruned,
                "last_error": self.last_error, "retention_days": self.retention_days}


class DecisionLog:
    """One replica's log writer: ``answered`` from the request path, ``start``/``stop`` from the app's lifespan."""

    def __init__(
        self,
        environment: str,
        sink: Sink,
        key: LogKey,
        *,
        queue_size: int = QUEUE_SIZE,
        batch_size: int = BATCH_SIZE,
        flush_interval: float = FLUSH_INTERVAL,
        retention: timedelta | None = DEFAULT_RETENTION,
        prune_every: float = PRUNE_EVERY,
    ) -> None:
        self.environment = environment
        self.sink = sink
        self.key = key
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retention = retention
        self.prune_every = prune_every
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._masks: dict[str, Masking] = {}
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.written = 0
        self.dropped = {"queue_full": 0, "sink_error": 0}
        self.failures = 0
        self.pruned = 0
        self.last_error: str | None = None
        self._last_ok = True
        self._last_prune = 0.0

    # ---- the request path ----------------------------------------------------------------------
    def masking(self, b: Bundle) -> Masking:
        m = self._masks.get(b.sha256)
        if m is None:
            m = self._masks[b.sha256] = Masking.of(b.protocol.inputs)
        return m

    def answers(self, entry: Any, b: Bundle, as_of: datetime, pairs: list[tuple[Any, Mapping[str, Any]]],
                started: float, batch_id: str | None = None) -> None:
        """Hand one request's answers over: (input, answer) pairs, timed from ``started`` (perf_counter)."""
        latency_ms = (time.perf_counter() - started) * 1000
        now, masking = clock.now(), self.masking(b)
        for rec, r in pairs:
            self.answered(Answered(r["decision_id"], entry.protocol_id, entry.version, entry.sha256, now, as_of,
                                   r.get("period"), latency_ms, rec, r["outputs"], masking, batch_id))

    def answered(self, a: Answered) -> None:
        """Offer one answer to the writer; never blocks (a full queue drops it, counted)."""
        try:
            self._queue.put_nowait(a)
        except queue.Full:
            self.dropped["queue_full"] += 1

    # ---- the writer ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._last_prune = time.monotonic()  # the first prune one interval after start, then every interval
            self._thread = threading.Thread(target=self._run, name=f"decision-log-{self.environment}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then end the writer (the app's shutdown)."""
        if self._thread is None:
            return
        self._stopping.set()
        self._thread.join(timeout)
        self._thread = None
        self._stopping.clear()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every answer offered so far is written or dropped (tests, ``stop``)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)

    def _run(self) -> None:
        # The writer sleeps between batches instead of waiting on the queue: waiting would wake it for every
        # answer (each put notifies), and a write per answer competes with the event loop for the GIL right
        # while that answer is being sent. One wake per interval writes everything queued since.
        while True:
            stopping = self._stopping.wait(self.flush_interval)
            self._drain()
            self._maybe_prune()
            if stopping:
                return

    def _drain(self) -> None:
        while True:
            batch = []
            while len(batch) < self.batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not batch:
                return
            self._write(batch)
            for _ in batch:
                self._queue.task_done()

    def _write(self, answers: list[Answered]) -> None:
        try:
            rows = [self._row(a) for a in answers]
            self.sink.write(rows)
        except Exception as e:  # the sink's failure is the log's, never the decision's
            self.failures += 1
            self.dropped["sink_error"] += len(answers)
            self.last_error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:500]
            self._last_ok = False
            log.warning("decision log: %d answers not written: %s", len(answers), self.last_error)
            return
        self.written += len(rows)
        self._last_ok = True

    def _row(self, a: Answered) -> dict[str, Any]:
        masked = a.masking.apply(a.input, self.key.secret)
        return {
            "decision_id": a.decision_id, "environment": self.environment, "protocol_id": a.protocol_id,
            "version": a.version, "bundle_sha256": a.bundle_sha256, "decided_at": a.decided_at, "as_of": a.as_of,
            "period": a.period, "latency_ms": a.latency_ms, "batch_id": a.batch_id, "key_id": self.key.id,
            "input": json.dumps(masked, separators=(",", ":"), ensure_ascii=False),
            "outputs": json.dumps(a.outputs, separators=(",", ":"), ensure_ascii=False),
        }

    def _maybe_prune(self) -> None:
        if self.retention is None or time.monotonic() - self._last_prune < self.prune_every:
            return
        self._last_prune = time.monotonic()
        try:
            self.pruned += self.sink.prune(clock.now() - self.retention)
        except Exception as e:
            self.failures += 1
            self.last_error = f"prune: {type(e).__name__}: {e}"[:500]
            log.warning("decision log: pruning failed: %s", self.last_error)

    # ---- status ----------------------------------------------------------------------------------
    def status(self) -> LogStatus:
        return LogStatus(
            enabled=True, ok=self._last_ok and self._thread is not None and self._thread.is_alive(),
            written=self.written, dropped=dict(self.dropped), failures=self.failures, queued=self._queue.qsize(),
            pruned=self.pruned, last_error=self.last_error,
            retention_days=self.retention.total_seconds() / 86400 if self.retention else None,
        )


def disabled_status() -> LogStatus:
    return LogStatus(enabled=False, ok=True)

"""``/metrics``: the decision service in Prometheus' text format (prometheus_client, one registry per app).

Per app, not the library's global registry: a process holding several apps (the tests, a bench) would
otherwise refuse the second app's metric names, and each replica's figures are its own.

===============================================  =========  ==============================================
metric                                           type       labels / what
===============================================  =========  ==============================================
hms_decision_requests_total                      counter    route, status: every HTTP request answered
hms_decision_request_seconds                     histogram  route: wall time inside the app
hms_decision_answers_total                       counter    protocol, bundle_sha256: decisions answered
hms_decision_evaluation_errors_total             counter    protocol, bundle_sha256: a rule failed (a 422)
hms_decision_server_errors_total                 counter    route: answers of 500 and above
hms_snapshot_generation                          gauge      the registry generation this replica serves
hms_snapshot_age_seconds                         gauge      since the last successful registry poll
hms_snapshot_reloads_total                       counter    snapshots loaded
hms_decision_log_written_total                   counter    answers the log wrote
hms_decision_log_dropped_total                   counter    reason (queue_full, sink_error)
hms_decision_log_failures_total                  counter    batches (or prunes) the sink refused
hms_decision_log_queued                          gauge      answers waiting for the writer
===============================================  =========  ==============================================

The post-flip check (hms.smoke) reads the answers and errors of the new bundle's hash from each replica.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hms.service.decision_log import LogStatus
from hms.service.metric_figures import ANSWERS, EVALUATION_ERRORS, LOG_DROPPED, SERVER_ERRORS

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _family(series: str) -> str:
    """A counter's name as the client library takes it: the exposition adds ``_total``."""
    return series.removesuffix("_total")


class _StateCollector:
    """Figures read at scrape time from the replica's state and its log (nothing to update per request)."""

    def __init__(self, snapshot: Callable[[], tuple[int | None, float | None, int]],
                 log_status: Callable[[], LogStatus]) -> None:
        self.snapshot = snapshot
        self.log_status = log_status

    def collect(self) -> Iterator[Metric]:
        generation, age, reloads = self.snapshot()
        yield GaugeMetricFamily("hms_snapshot_generation", "registry generation this replica serves (-1: none yet)",
                                value=-1 if generation is None else generation)
        yield GaugeMetricFamily("hms_snapshot_age_seconds", "seconds since the last successful registry poll",
                                value=float("nan") if age is None else age)
        yield CounterMetricFamily("hms_snapshot_reloads", "snapshots loaded from the registry", value=reloads)
        st = self.log_status()
        yield GaugeMetricFamily("hms_decision_log_enabled", "1 when this replica logs its decisions",
                                value=1 if st.enabled else 0)
        yield CounterMetricFamily("hms_decision_log_written", "answers written to the decision log", value=st.written)
        dropped = CounterMetricFamily(_family(LOG_DROPPED), "answers not logged, by reason", labels=["reason"])
        for reason, n in sorted(st.dropped.items()):
            dropped.add_metric([reason], n)
        yield dropped
        yield CounterMetricFamily("hms_decision_log_failures", "sink failures (a batch or a prune refused)",
                                  value=st.failures)
        yield GaugeMetricFamily("hms_decision_log_queued", "answers waiting for the log's writer", value=st.queued)


class ServiceMetrics:
    """One app's metrics; ``middleware`` times every request, ``answered``/``evaluation_failed`` count decisions."""

    def __init__(self, snapshot: Callable[[], tuple[int | None, float | None, int]],
                 log_status: Callable[[], LogStatus]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("hms_decision_requests", "HTTP requests answered", ["route", "status"], registry=r)
        self.latency = Histogram("hms_decision_request_seconds", "time inside the app per request", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.answers = Counter(_family(ANSWERS), "decisions answered, per bundle",
                               ["protocol", "bundle_sha256"], registry=r)
        self.evaluation_errors = Counter(_family(EVALUATION_ERRORS),
                                         "decisions whose rules failed on the input (a 422), per bundle",
                                         ["protocol", "bundle_sha256"], registry=r)
        self.server_errors = Counter(_family(SERVER_ERRORS), "answers of status 500 and above", ["route"],
                                     registry=r)
        r.register(_StateCollector(snapshot, log_status))  # type: ignore[arg-type]

    def answered(self, protocol: str, sha256: str, n: int = 1) -> None:
        self.answers.labels(protocol, sha256).inc(n)

    def evaluation_failed(self, protocol: str, sha256: str) -> None:
        self.evaluation_errors.labels(protocol, sha256).inc()

    def mount(self, app: FastAPI) -> None:
        """``GET /metrics`` and the timing middleware on ``app`` (outermost: a 431 of HeaderBounds counts too)."""

        @app.get("/metrics", include_in_schema=False)
        async def metrics() -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

        app.add_middleware(RequestTiming, metrics=self)


class RequestTiming:
    """ASGI middleware: status and time of every HTTP request, by route template (bounded label values)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the app starts a response: an exception escaping it is a 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            m = self.metrics
            m.requests.labels(route, str(status)).inc()
            m.latency.labels(route).observe(time.perf_counter() - started)
            if status >= 500:
                m.server_errors.labels(route).inc()

"""The decision service: citizen-facing systems ask "eligible? how much? under which law?".

``create_app(source)`` builds the FastAPI app for one environment. A background
task polls the source's generation (one cheap row) every ``poll_interval`` and
reloads the snapshot when it changes, so a deployment or a rollback is picked up
without a restart; the version answering each request is chosen by the clock
(see timeline.py). Request bodies are parsed by body.py, not by FastAPI, so malformed
JSON is a 400, an oversized body a 413, and an invalid input (a number past 2**53,
a lone surrogate, a wrong field) a 422 naming the field; headers past the bounds of
http.py are a 431. Every refusal is rendered by refusal.py — never a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic_core import to_json

from hms import clock
from hms.dated import combine
from hms.errors import BadInput, BadInputs, EvaluationError
from hms.periods import Period
from hms.service import body, docs, explanation, refusal, schema
from hms.service.decision_log import DecisionLog, disabled_status
from hms.service.http import HeaderBounds
from hms.service.limits import MAX_BATCH, MAX_BODY_BYTES  # noqa: F401  (MAX_BODY_BYTES: re-exported for tests)
from hms.service.metrics import ServiceMetrics
from hms.service.refusal import Refusal, quote
from hms.service.timeline import Entry, Snapshot

log = logging.getLogger("hms.service")

# Seconds between generation checks. A check costs ~0.07 ms of CPU (source.RegistrySource.generation), so
# 4 replicas polling 40 times a second cost about 1 % of a core and pick a change up within 25 ms: well
# inside the window a rollback leaves before its switch instant (effective_time.PROPAGATION).
POLL_INTERVAL = 0.025


class Source(Protocol):
    """Where a replica gets its deployments (the registry in production)."""

    environment: str

    def generation(self) -> int: ...

    def load(self) -> Snapshot: ...


class State:
    def __init__(self, source: Source, poll_interval: float) -> None:
        self.source = source
        self.poll_interval = poll_interval
        self.snapshot: Snapshot | None = None
        self.last_ok: float = 0.0
        self.last_error: str | None = None
        self.reloads = 0

    def refresh(self) -> None:
        gen = self.source.generation()
        if self.snapshot is None or gen != self.snapshot.generation:
            self.snapshot = self.source.load()
            self.reloads += 1
            log.info("loaded generation %s (%d protocols)", self.snapshot.generation, len(self.snapshot.timelines))
        self.last_ok = time.monotonic()
        self.last_error = None


def _as_of(data: dict[str, Any], allowed: set[str]) -> datetime:
    extra = sorted(set(data) - allowed)
    if extra:
        raise Refusal(422, f"unknown field {quote(extra[0])}", ["body", extra[0]])
    raw = data.get("as_of")
    if raw is None:
        return clock.now()
    if not isinstance(raw, str):
        raise Refusal(422, "as_of must be an ISO 8601 date-time string with a timezone", ["body", "as_of"])
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise Refusal(422, "as_of is not an ISO 8601 date-time", ["body", "as_of"]) from None
    if at.tzinfo is None:
        raise Refusal(422, "as_of must carry a timezone", ["body", "as_of"])
    return at


def _entry_dict(e: Entry) -> dict[str, Any]:
    return {
        "version": e.version,
        "bundle_sha256": e.sha256,
        "activate_at": e.activate_at.isoformat(),
        "state": e.state,
    }


def create_app(source: Source, *, poll_interval: float | None = None, stale_after: float = 5.0,
               decision_log: DecisionLog | None = None) -> FastAPI:
    """``decision_log``: where every answer is recorded (hms.service.decision_log); None records nothing."""
    state = State(source, poll_interval or POLL_INTERVAL)
    log_status = decision_log.status if decision_log is not None else disabled_status
    metrics = ServiceMetrics(lambda: (state.snapshot.generation if state.snapshot else None,
                                      time.monotonic() - state.last_ok if state.last_ok else None, state.reloads),
                             log_status)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(state.refresh)

        async def poll() -> None:
            while True:
                await asyncio.sleep(state.poll_interval)
                try:
                    await asyncio.to_thread(state.refresh)
                except Exception as e:  # keep serving the last good snapshot; readiness reports it
                    state.last_error = f"{type(e).__name__}: {e}"
                    log.warning("registry poll failed: %s", state.last_error)

        task = asyncio.create_task(poll())
        if decision_log is not None:
            decision_log.start()
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if decision_log is not None:
                await asyncio.to_thread(decision_log.stop)

    app = FastAPI(
        title=f"HMS decision service ({source.environment})", version="1", lifespan=lifespan,
        docs_url=None, redoc_url=None,  # served from local assets by docs.mount_docs, not a CDN
    )
    docs.mount_docs(app)
    app.state.hms = state

    app.add_middleware(HeaderBounds)
    metrics.mount(app)  # GET /metrics, and every request timed (hms.service.metrics)

    @app.exception_handler(Refusal)
    async def _refused(_: Request, exc: Refusal) -> Response:
        return refusal.render(exc.status, exc.message, exc.loc, more=exc.more)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "environment": source.environment}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        fresh = state.snapshot is not None and time.monotonic() - state.last_ok < stale_after
        body = {
            "ready": fresh,
            "environment": source.environment,
            "generation": state.snapshot.generation if state.snapshot else None,
            "error": state.last_error,
            # Evidence this replica refuses to serve (unsigned, badly signed or rebound deployment rows), as OPA
            # reports a bundle whose signature fails: still ready, on the last verified state.
            "refused_evidence": list(state.snapshot.refused) if state.snapshot else [],
            # A failing log never fails a decision nor readiness: it is reported here and in /metrics.
            "decision_log": log_status().to_dict(),
        }
        return JSONResponse(body, status_code=200 if fresh else 503)

    def snapshot() -> Snapshot:
        if state.snapshot is None:
            raise Refusal(503, "no deployments loaded yet")
        return state.snapshot

    @app.get("/v1/protocols")
    async def protocols() -> dict[str, Any]:
        snap = snapshot()
        now = clock.now()
        out = []
        for pid, tl in sorted(snap.timelines.items()):
            cur = tl.in_force(now)
            out.append(
                {
                    "id": pid,
                    "live": _entry_dict(cur) if cur else None,
                    "pending": [_entry_dict(e) for e in tl.pending(now)],
                }
            )
        return {
            "environment": source.environment,
            "generation": snap.generation,
            "now": now.isoformat(),
            "protocols": out,
        }

    def resolve(pid: str, at: datetime) -> tuple[Entry, Any]:
        snap = snapshot()
        tl = snap.timelines.get(pid)
        if tl is None:
            raise Refusal(404, f"unknown protocol {quote(pid)} in {source.environment}", ["path", "id"])
        entry = tl.in_force(at)
        if entry is None:
            raise Refusal(404, f"no version of {quote(pid)} is in force at {at.isoformat()}", ["body", "as_of"])
        return entry, snap.bundles[entry.sha256]

    def period_of(b: Any, data: dict[str, Any], at: datetime) -> Period | None:
        """The period asked for (``period``), else the one holding ``as_of``; None for a protocol without periods."""
        if "period" not in data:
            return b.protocol.default_period(at)
        try:
            return b.protocol.parse_period(data["period"], where="period")
        except BadInput as e:
            raise Refusal(422, e.message, ["body", "period"]) from None

    def plan_of(b: Any, period: Period | None) -> list[Any]:
        try:
            return [rs for _, rs in b.protocol.plan(period)]
        except BadInput as e:  # a parameter changes inside the period and the protocol says that is an error
            raise Refusal(422, e.message, ["body", "period"]) from None

    def decide_one(
        entry: Entry, b: Any, rec: Any, loc: list[Any], period: Period | None, explain: bool = False
    ) -> dict[str, Any]:
        def place(e: BadInput) -> list[Any]:
            # "input.members.1.age" (a household's member) → [..., "members", 1, "age"]
            return [*loc, *(int(p) if p.isdigit() else p for p in (e.where or "input").split(".")[1:])]

        plan = plan_of(b, period)
        try:
            checked = plan[0].coerce_record(rec, where="input", every_error=True)  # every invalid field at once
            # A household checked once is evaluated as it is (a flat record's failure quotes the input as sent);
            # its explanation reuses every rule's value rather than evaluating it again.
            once = checked if plan[0].model is not None else rec
            evaluated = [rs.evaluate(once) for rs in plan]
            outputs = combine([{o: v[o] for o in rs.outputs} for rs, v in zip(plan, evaluated, strict=True)], period)
        except BadInputs as e:
            first, *rest = e.problems
            raise Refusal(422, first.message, place(first), more=[(p.message, place(p)) for p in rest]) from None
        except BadInput as e:
            raise Refusal(422, e.message, place(e)) from None
        except EvaluationError as e:
            metrics.evaluation_failed(entry.protocol_id, entry.sha256)
            raise Refusal(422, f"the rule could not be evaluated for this input: {e.message}", loc) from None
        return {
            "outputs": {k: _plain(v) for k, v in outputs.items()},
            **({"explanation": explanation.answer(b.protocol, period, once, evaluated)} if explain else {}),
            **({"period": period.label} if period is not None else {}),
            "version": entry.version,
            "bundle_sha256": entry.sha256,
            "decision_id": str(uuid.uuid4()),
        }

    @app.post(
        "/v1/protocols/{pid}/decide", response_model=schema.Decision, response_model_exclude_unset=True,
        openapi_extra=schema.request_body(schema.DecideRequest), responses=schema.REFUSALS,
    )
    async def decide(pid: str, request: Request) -> Response:
        started = time.perf_counter()
        data = await body.read(request.headers.get("content-length"), request.stream())
        at = _as_of(data, {"input", "as_of", "period", explanation.FLAG})
        explain = explanation.requested(data)
        if "input" not in data:
            raise Refusal(422, "missing field", ["body", "input"])
        entry, b = resolve(pid, at)
        result = decide_one(entry, b, data["input"], ["body", "input"], period_of(b, data, at), explain)
        metrics.answered(pid, entry.sha256)
        if decision_log is not None:
            decision_log.answers(entry, b, at, [(data["input"], result)], started)
        return _answer({**result, "protocol": pid, "environment": source.environment, "as_of": at.isoformat()})

    @app.post(
        "/v1/protocols/{pid}/decide/batch", response_model=schema.BatchDecision, response_model_exclude_unset=True,
        openapi_extra=schema.request_body(schema.BatchRequest), responses=schema.REFUSALS,
    )
    async def decide_batch(pid: str, request: Request) -> Response:
        started = time.perf_counter()
        data = await body.read(request.headers.get("content-length"), request.stream())
        at = _as_of(data, {"inputs", "as_of", "period", explanation.FLAG})
        explain = explanation.requested(data)
        inputs = data.get("inputs")
        if not isinstance(inputs, list):
            raise Refusal(422, "inputs must be a list of input objects", ["body", "inputs"])
        if len(inputs) > MAX_BATCH:
            raise Refusal(413, f"at most {MAX_BATCH} inputs per batch", ["body", "inputs"])
        entry, b = resolve(pid, at)
        period = period_of(b, data, at)
        results = [decide_one(entry, b, rec, ["body", "inputs", i], period, explain) for i, rec in enumerate(inputs)]
        metrics.answered(pid, entry.sha256, len(results))
        if decision_log is not None:
            decision_log.answers(entry, b, at, list(zip(inputs, results, strict=True)), started, str(uuid.uuid4()))
        answers = {"protocol": pid, "environment": source.environment, "as_of": at.isoformat(), "results": results}
        return _answer(answers)

    return app


def _answer(body: dict[str, Any]) -> Response:
    """An answer serialized once, by pydantic's Rust core, as its route's ``response_model`` would write it.

    Returned as a ``Response``, FastAPI passes it through: the ``response_model`` still documents the answer in
    the OpenAPI, but is not run over it again. For an explained household answer (~15 kB, hundreds of nested
    models) that re-validation cost about as much as deriving the explanation. The answer is built here from
    plain values, its keys in the models' order and its unset fields left out; tests hold its body to the
    models (tests/unit/test_decision_explanations.py). Non-finite numbers are null, as the models write them.
    """
    return Response(to_json(body, inf_nan_mode="null"), media_type="application/json")


def _plain(v: Any) -> Any:
    """JSON-friendly output: whole-number floats as integers (4000, not 4000.0); a member rule's list likewise."""
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        return int(v)
    return v

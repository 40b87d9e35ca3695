"""Does an environment answer with this bundle, and answer its test cases correctly?

With replica URLs configured for the environment, every replica is asked over
HTTP (what citizens' systems see), and its ``/metrics`` read before and after: the
replica must have counted the answers it gave for this bundle's hash, and none of
its real traffic on this bundle may have failed in the rules (an evaluation error)
or in the service (a 5xx) — the post-flip check sees what the citizens got, not
only the test cases. Without, the check reads the environment's
deployments from the registry exactly as a replica would (service/source.py)
and evaluates the cases with the version in force now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from hms import clock
from hms.bundle import Bundle
from hms.cases import Tolerance, same_value
from hms.pipeline_config import PipelineConfig
from hms.service.metric_figures import BundleFigures, bundle_figures


@dataclass
class SmokeResult:
    environment: str
    sha256: str
    ok: bool
    summary: str
    details: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"[smoke] {'✅' if self.ok else '❌'} {self.environment}: {self.summary}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "environment": self.environment,
            "sha256": self.sha256,
            "summary": self.summary,
            "details": self.details,
        }


def _compare(case: dict[str, Any], outputs: dict[str, Any]) -> list[str]:
    return [
        f"{k}: expected {v!r}, got {outputs.get(k)!r}"
        for k, v in case["expect"].items()
        if k in outputs and not same_value(v, outputs[k], Tolerance.of(case))
    ]


def _request(b: Bundle, case: dict[str, Any]) -> dict[str, Any]:
    """The decision request for a case: a protocol with periods is asked for the case's period explicitly."""
    period = b.protocol.case_period(case)
    return {"input": case["input"], **({"period": period.label} if period is not None else {})}


def check_environment(b: Bundle, env: str, config: PipelineConfig, timeout: float = 5.0) -> SmokeResult:
    urls = list(config.environment(env).urls)
    if urls:
        return _check_http(b, env, urls, timeout)
    return _check_registry(b, env)


def _check_http(b: Bundle, env: str, urls: list[str], timeout: float) -> SmokeResult:
    problems: list[str] = []
    details: list[str] = []
    cases = b.protocol.service_cases
    with httpx.Client(timeout=timeout) as client:
        for url in urls:
            bad = 0
            before = _figures(client, url, b.sha256)
            for case in cases:
                try:
                    r = client.post(
                        f"{url.rstrip('/')}/v1/protocols/{b.protocol.id}/decide", json=_request(b, case)
                    )
                except httpx.HTTPError as e:
                    problems.append(f"{url}: {type(e).__name__}")
                    bad += 1
                    break
                if r.status_code != 200:
                    problems.append(f"{url}: HTTP {r.status_code} for {case['name']!r}")
                    bad += 1
                    continue
                body = r.json()
                if body.get("bundle_sha256") != b.sha256:
                    problems.append(f"{url}: serves v{body.get('version')} ({str(body.get('bundle_sha256'))[:12]})")
                    bad += 1
                    break
                wrong = _compare(case, body["outputs"])
                if wrong:
                    problems.append(f"{url}: {case['name']!r}: {'; '.join(wrong)}")
                    bad += 1
            details.append(f"{url}: {len(cases) - bad}/{len(cases)} cases answered with {b.short}")
            problems += _metrics_problems(client, url, b, before, len(cases) - bad, details)
    if problems:
        return SmokeResult(
            env, b.sha256, False, problems[0] + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""), details
        )
    return SmokeResult(
        env, b.sha256, True, f"{len(urls)} replica(s) answer {len(cases)} cases with v{b.protocol.version}", details
    )


def _figures(client: httpx.Client, url: str, sha256: str) -> BundleFigures | str:
    """The replica's figures for the bundle, or why they could not be read."""
    try:
        r = client.get(f"{url.rstrip('/')}/metrics")
    except httpx.HTTPError as e:
        return f"{url}/metrics: {type(e).__name__}"
    if r.status_code != 200:
        return f"{url}/metrics: HTTP {r.status_code}"
    return bundle_figures(r.text, sha256)


def _metrics_problems(client: httpx.Client, url: str, b: Bundle, before: BundleFigures | str, answered: int,
                      details: list[str]) -> list[str]:
    after = _figures(client, url, b.sha256)
    for got in (before, after):
        if isinstance(got, str):
            return [got]
    assert isinstance(before, BundleFigures) and isinstance(after, BundleFigures)
    problems = []
    if after.answers - before.answers < answered:
        problems.append(f"{url}: /metrics counts {after.answers - before.answers:g} answers for {b.short} "
                        f"after {answered} were answered")
    if after.evaluation_errors:
        problems.append(f"{url}: {after.evaluation_errors:g} decisions failed in the rules of {b.short} "
                        "(hms_decision_evaluation_errors_total)")
    if after.server_errors > before.server_errors:
        problems.append(f"{url}: {after.server_errors - before.server_errors:g} server errors during the check")
    lost = f"; ⚠ the decision log dropped {after.log_dropped:g} answers" if after.log_dropped else ""
    details.append(f"{url}: /metrics: {after.answers:g} answers for {b.short}, "
                   f"{after.evaluation_errors:g} evaluation errors{lost}")
    return problems


def _check_registry(b: Bundle, env: str) -> SmokeResult:
    from hms.service.source import RegistrySource

    snap = RegistrySource(env).load()
    tl = snap.timelines.get(b.protocol.id)
    cur = tl.in_force(clock.now()) if tl else None
    if cur is None or cur.sha256 != b.sha256:
        serving = f"v{cur.version} ({cur.sha256[:12]})" if cur else "nothing"
        return SmokeResult(env, b.sha256, False, f"{env} serves {serving}, not v{b.protocol.version} ({b.short})")
    served = snap.bundles[cur.sha256]
    wrong = []
    for case in b.protocol.service_cases:
        w = _compare(case, served.protocol.decide(case["input"], served.protocol.case_period(case)))
        if w:
            wrong.append(f"{case['name']!r}: {'; '.join(w)}")
    if wrong:
        return SmokeResult(env, b.sha256, False, wrong[0])
    return SmokeResult(
        env,
        b.sha256,
        True,
        f"serves v{b.protocol.version} ({b.short}); {len(b.protocol.service_cases)} cases "
        "answered correctly (registry view: no replica URLs configured)",
    )

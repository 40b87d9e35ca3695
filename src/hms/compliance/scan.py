"""``scan``: a bundle (or protocol) through the requested rule sets, with counts and findings.

The pipeline settings the legal rule set needs (freeze windows, approval policy) come from
``hms.pipeline_config`` when the caller does not pass them; fairness figures come from the caller
(``hms scan --simulation``, or ``fairness_for`` which runs the simulation). ``scan_many`` and
``ProcessScanner`` are the batch forms (benchmark, CI sweeps): compiled policies are cached per
content hash and reused; threads share them (one OPA engine per thread), processes compile once
each. Measured on 2 CPUs (bench/bench_compliance.py), processes win for big batches because bundle
verification is Python and holds the GIL; threads need no start-up and suit small ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hms.bundle import Bundle
from hms.compliance import engine
from hms.compliance.input import build_input
from hms.errors import BadInput
from hms.protocol import Protocol

DEFAULT_RULE_SETS = ("privacy", "ethics", "legal")


@dataclass(frozen=True)
class Finding:
    rule_set: str
    message: str
    path: str

    def line(self) -> str:
        return f"  {self.rule_set}: {self.path}: {self.message}"

    def warning_line(self) -> str:
        return f"  ⚠ {self.rule_set}: {self.path}: {self.message}"


@dataclass
class ScanResult:
    protocol_id: str
    version: int
    sha256: str | None
    rule_sets: tuple[str, ...]
    findings: list[Finding] = field(default_factory=list)
    policy_digest: str = ""
    fairness_used: bool = False
    warnings: list[Finding] = field(default_factory=list)  # for the reviewers; they do not fail the scan

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.rule_sets, 0)
        for f in self.findings:
            counts[f.rule_set] = counts.get(f.rule_set, 0) + 1
        return counts

    @property
    def ok(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        """The seed's one-line form: ``[scan] privacy(0) ethics(0)``."""
        mark = "✅" if self.ok else "❌"
        counts = " ".join(f"{rs}({n})" for rs, n in self.counts.items())
        review = f" ⚠ {len(self.warnings)} for review" if self.warnings else ""
        return f"[scan] {counts} {mark} {self.protocol_id} v{self.version}{review}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "id": self.protocol_id,
            "version": self.version,
            "sha256": self.sha256,
            "rule_sets": list(self.rule_sets),
            "counts": self.counts,
            "findings": [f.__dict__ for f in self.findings],
            "warnings": [f.__dict__ for f in self.warnings],
            "policy_sha256": self.policy_digest,
            "fairness_checked": self.fairness_used,
        }


@dataclass(frozen=True)
class Settings:
    """What the legal rule set needs from the pipeline settings."""

    freeze_windows: tuple[Any, ...] = ()
    approval_policy: Any = None


def _load_config() -> Any:
    from hms.pinned_policy import governing

    return governing()


def pipeline_settings(protocol: Protocol, config: Any = None) -> Settings:
    """Freeze windows and the effective approval policy from .hms-ci/policy-pipeline.yml (or ``config``).

    Imported lazily: only scans without explicit settings need the settings file, and a missing or
    invalid one is the loader's BadInput (exit 2).
    """
    from hms.pipeline_config import effective_approval_policy

    config = config if config is not None else _load_config()
    return Settings(tuple(config.freeze_windows), effective_approval_policy(config, protocol))


def fairness_for(b: Bundle) -> dict[str, Any] | None:
    """The simulation's fairness figures, or None when the protocol has no budget (no population).

    Uses ``hms.simulate`` when it is installed; simulation errors propagate, because a scan that
    silently skipped the four-fifths check would pass a bundle nobody checked.
    """
    if not b.protocol.budget:
        return None
    try:
        from hms.simulate import simulate
    except ImportError:
        return None
    return simulate(b).fairness


def scan(
    target: Bundle | Protocol,
    rule_sets: Iterable[str] = DEFAULT_RULE_SETS,
    *,
    fairness: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    now: datetime | None = None,
    policies: engine.PolicySet | None = None,
    policy_dir: str | Path | None = None,
) -> ScanResult:
    """Scan one bundle or protocol. ``settings=None`` reads the pipeline settings (see ``pipeline_settings``)."""
    ps = policies or engine.load(policy_dir)
    names = ps.check_rule_sets(rule_sets)
    protocol, sha = (target.protocol, target.sha256) if isinstance(target, Bundle) else (target, None)
    if settings is None:
        settings = pipeline_settings(protocol)
    opa_input = build_input(
        protocol,
        fairness=fairness,
        freeze_windows=settings.freeze_windows,
        approval_policy=settings.approval_policy,
        now=now,
    )
    deny, warn = ps.evaluate_with_warnings(opa_input, names)
    return result_from(protocol, sha, names, ps, deny, fairness is not None, warn)


def result_from(
    protocol: Protocol,
    sha256: str | None,
    rule_sets: Sequence[str],
    ps: engine.PolicySet,
    raw: Mapping[str, list[Mapping[str, Any]]],
    fairness_used: bool,
    raw_warnings: Mapping[str, list[Mapping[str, Any]]] | None = None,
) -> ScanResult:
    findings = _findings(rule_sets, ps, raw, "finding")
    warnings = _findings(rule_sets, ps, raw_warnings or {}, "warning")
    return ScanResult(
        protocol.id, protocol.version, sha256, tuple(rule_sets), findings, ps.digest, fairness_used, warnings
    )


def _findings(
    rule_sets: Sequence[str], ps: engine.PolicySet, raw: Mapping[str, list[Mapping[str, Any]]], kind: str
) -> list[Finding]:
    out = []
    for rs in rule_sets:
        for f in raw.get(rs, []):
            if not isinstance(f, Mapping) or not {"message", "path"} <= f.keys():
                raise BadInput(
                    f"rule set {rs!r} produced a {kind} without message/path: {f!r}", where=str(ps.directory)
                )
            out.append(Finding(str(f.get("rule_set", rs)), str(f["message"]), str(f["path"])))
    return out


def scan_many(
    targets: Sequence[Bundle | Protocol | bytes],
    rule_sets: Iterable[str] = DEFAULT_RULE_SETS,
    *,
    settings: Settings | None = None,
    now: datetime | None = None,
    workers: int = 2,
    processes: bool = False,
    policies: engine.PolicySet | None = None,
) -> list[ScanResult]:
    """Scan many bundles (objects or raw bytes, verified here); results in input order.

    ``workers`` threads share one compiled PolicySet (one OPA engine each). ``processes=True`` uses
    a spawned process pool instead (bytes only; each worker compiles once): on 2 CPUs it is the
    faster of the two for large batches because bundle verification is Python and holds the GIL
    (see bench/bench_compliance.py). ``settings=None`` reads the pipeline settings once for the batch
    and tightens the approval policy per protocol.
    """
    ps = policies or engine.load()
    names = ps.check_rule_sets(rule_sets)
    config: Any = None
    if settings is None:
        config = _load_config()
    if processes and workers > 1:
        if not all(isinstance(t, bytes) for t in targets):
            raise BadInput("a process pool scans raw bundle bytes only", where="scan_many")
        with ProcessScanner(names, settings=settings, now=now, workers=workers, policies=ps) as scanner:
            return scanner.scan(list(targets))  # type: ignore[arg-type]
    return _scan_chunk(list(targets), names, settings, config, now, ps, workers)


def _scan_chunk(
    targets: Sequence[Bundle | Protocol | bytes],
    names: tuple[str, ...],
    settings: Settings | None,
    config: Any,
    now: datetime | None,
    ps: engine.PolicySet,
    workers: int = 1,
) -> list[ScanResult]:
    from hms import bundle as bundle_mod

    def one(t: Bundle | Protocol | bytes) -> ScanResult:
        item = bundle_mod.read_bytes(t) if isinstance(t, bytes) else t
        proto = item.protocol if isinstance(item, Bundle) else item
        s = settings if settings is not None else pipeline_settings(proto, config)
        return scan(item, names, settings=s, now=now, policies=ps)

    if workers <= 1:
        return [one(t) for t in targets]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, targets))


_WORKER_POLICIES: engine.PolicySet | None = None


def _worker_init(policy_dir: str) -> None:
    """Process-pool initializer: compile the policies before any bundle is scanned."""
    global _WORKER_POLICIES
    _WORKER_POLICIES = engine.load(policy_dir)
    _WORKER_POLICIES.engine()


def _worker_ready() -> int:
    return os.getpid()


def _worker_scan(args: tuple[list[bytes], tuple[str, ...], Settings | None, Any, datetime | None]) -> list[ScanResult]:
    assert _WORKER_POLICIES is not None
    return _scan_chunk(*args, _WORKER_POLICIES)


class ProcessScanner:
    """A warm pool of scanning processes for large batches: start once, ``scan`` many batches.

    Spawned, not forked: the OPA engine's Go runtime, once started in this process, does not survive
    fork. Each worker compiles the policies in its initializer, and the constructor waits until every
    worker is up, so timing ``scan`` measures scanning only.
    """

    def __init__(
        self,
        rule_sets: Iterable[str] = DEFAULT_RULE_SETS,
        *,
        settings: Settings | None = None,
        now: datetime | None = None,
        workers: int = 2,
        policies: engine.PolicySet | None = None,
    ) -> None:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ps = policies or engine.load()
        self.names = ps.check_rule_sets(rule_sets)
        self.settings, self.now, self.workers = settings, now, workers
        self.config: Any = None
        if settings is None:
            self.config = _load_config()
        self._pool = ProcessPoolExecutor(
            workers, mp_context=mp.get_context("spawn"), initializer=_worker_init, initargs=(str(ps.directory),)
        )
        for f in [self._pool.submit(_worker_ready) for _ in range(workers)]:
            f.result()

    def scan(self, raw: Sequence[bytes]) -> list[ScanResult]:
        size = max(1, min(64, len(raw) // (self.workers * 4)))
        chunks = [
            (list(raw[i : i + size]), self.names, self.settings, self.config, self.now)
            for i in range(0, len(raw), size)
        ]
        return [r for part in self._pool.map(_worker_scan, chunks) for r in part]

    def close(self) -> None:
        self._pool.shutdown()

    def __enter__(self) -> ProcessScanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The one adapter between HMS and OPA: load include/policies once, evaluate many inputs, run Rego tests.

In-process evaluation uses ``opa-golib-python-bindings`` (the real OPA engine, Go, via ctypes; see
../shared/research/rego-and-rules.md). It is an alpha from one maintainer, so nothing else in HMS
imports it: swap the engine here and the policies, the CLI and the pipeline stay as they are. The
Kubernetes path runs the very same files with the ``openpolicyagent/opa`` image; see
``opa_container_command``.

Policy directory conventions (``policy_dir()``):
- ``<name>.rego`` with ``package <name>`` and a ``deny`` set is the rule set ``<name>``;
- ``*_test.rego`` are Rego tests (``test_*`` rules), other ``.rego`` files are shared helpers;
- ``data.json`` is the editable data document (identifier and attribute lists, thresholds).

Compiling is the slow part (tens of ms) and evaluating the fast part (~0.1 ms), so an engine is
compiled once per content hash of the policy files and kept; OPA caches the prepared query per query
string. One engine serializes its evaluations, so ``PolicySet.engine()`` gives each thread its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from hms.errors import BadInput

DATA_FILE = "data.json"
OPA_IMAGE = "openpolicyagent/opa:1.20.2-static"  # the OPA version compiled into opa-golib-python-bindings 0.4.4
_TEST_RULE = re.compile(r"^(test_[A-Za-z0-9_]*)\b", re.MULTILINE)
_PACKAGE = re.compile(r"^package\s+([A-Za-z0-9_.]+)", re.MULTILINE)


def policy_dir() -> Path:
    """``$HMS_POLICY_DIR``, else include/policies of the source checkout, else of the working directory.

    The image installs hms into site-packages and copies include/ to its working directory
    (/opt/hms), so the checkout path and the cwd path cover development and containers alike.
    """
    env = os.environ.get("HMS_POLICY_DIR")
    if env:
        return Path(env)
    return governed_policy_dir()


def governed_policy_dir() -> Path:
    """The repository's policies (checkout, else working directory): the only ones a recorded scan may use."""
    checkout = Path(__file__).resolve().parents[3] / "include" / "policies"
    return checkout if checkout.is_dir() else Path.cwd() / "include" / "policies"


@dataclass(frozen=True)
class RegoTest:
    """One ``test_*`` rule and its outcome."""

    file: str
    line: int
    package: str
    name: str
    passed: bool
    error: str | None = None

    @property
    def id(self) -> str:
        return f"{self.package}.{self.name}"


class PolicySet:
    """The policy files of one directory, read once and identified by their content hash."""

    def __init__(self, directory: Path, sources: Mapping[str, str], data: Mapping[str, Any]) -> None:
        self.directory = directory
        self.sources = dict(sources)  # relative path -> Rego source, sorted
        self.data = data
        self._local = threading.local()
        self._compiled = False
        self._lock = threading.Lock()

    @classmethod
    def read(cls, directory: Path) -> PolicySet:
        if not directory.is_dir():
            raise BadInput("policy directory not found", where=str(directory))
        sources = {
            p.relative_to(directory).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(directory.rglob("*.rego"))
        }
        if not sources:
            raise BadInput("no .rego files", where=str(directory))
        data: Any = {}
        data_path = directory / DATA_FILE
        if data_path.is_file():
            try:
                data = json.loads(data_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise BadInput(f"not valid JSON: {e.msg}", where=f"{data_path}:{e.lineno}") from None
        return cls(directory, sources, data)

    @cached_property
    def digest(self) -> str:
        h = hashlib.sha256()
        for name, text in self.sources.items():
            h.update(name.encode() + b"\0" + text.encode() + b"\0")
        h.update(json.dumps(self.data, sort_keys=True).encode())
        return h.hexdigest()

    @cached_property
    def rule_sets(self) -> tuple[str, ...]:
        """Rule sets by convention: ``<name>.rego`` declaring ``package <name>`` (not tests, not helpers)."""
        out = []
        for name, text in self.sources.items():
            stem = Path(name).stem
            m = _PACKAGE.search(text)
            if "/" not in name and not stem.endswith("_test") and m and m.group(1) == stem:
                out.append(stem)
        return tuple(sorted(out))

    def check_rule_sets(self, names: Iterable[str]) -> tuple[str, ...]:
        """Validate requested rule set names (order kept, duplicates dropped); unknown ones are a BadInput."""
        wanted = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
        if not wanted:
            raise BadInput(f"no rule set given; known: {', '.join(self.rule_sets)}", where="--rules")
        unknown = [n for n in wanted if n not in self.rule_sets]
        if unknown:
            raise BadInput(f"unknown rule set {unknown[0]!r}; known: {', '.join(self.rule_sets)}", where="--rules")
        return wanted

    # -- the in-process engine ------------------------------------------------------------------

    def engine(self) -> Any:
        """This thread's compiled ``OpaEngine`` (built on first use). Compile errors are BadInput."""
        eng = getattr(self._local, "engine", None)
        if eng is None:
            eng = self._build()
            self._local.engine = eng
        return eng

    def _build(self) -> Any:
        try:
            from opa_bindings import OpaEngine, OpaError
        except ImportError:  # pragma: no cover - the Makefile and the image install it
            raise BadInput(
                "the OPA engine is not installed: pip install --ignore-requires-python --no-deps "
                "opa-golib-python-bindings==0.4.4"
            ) from None
        eng = OpaEngine()
        try:
            for name, text in self.sources.items():
                eng.add_policy(str(self.directory / name), text)
            if self.data:
                eng.add_data(self.data)
            # OPA compiles all modules together on the first evaluation: force it now, so a type or
            # safety error surfaces here with its file:line, not in the middle of a batch.
            eng.eval_query("x := data.compliance", None)
        except OpaError as e:
            eng.close()
            where, message = _located(_opa_message(e.message))
            raise BadInput(f"policy does not compile: {message}", where=where or str(self.directory)) from None
        return eng

    def evaluate(self, opa_input: Mapping[str, Any], rule_sets: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Findings (``deny``) per rule set for one input."""
        return self.evaluate_with_warnings(opa_input, rule_sets)[0]

    def evaluate_with_warnings(
        self, opa_input: Mapping[str, Any], rule_sets: Sequence[str]
    ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
        """(findings, warnings) per rule set: one OPA query over every ``deny`` and ``warn`` set.

        A warning (``warn``, optional in a rule set) does not fail the scan: it is shown to the
        reviewers and names what they must look at (a possible proxy, an exemption the legal role
        approves).
        """
        from opa_bindings import OpaError

        query = _query(tuple(rule_sets))
        try:
            rows = self.engine().eval_query(query, opa_input)
        except OpaError as e:
            where, message = _located(_opa_message(e.message))
            raise BadInput(f"policy evaluation failed: {message}", where=where or str(self.directory)) from None
        result = rows[0]["x"] if rows else {}
        warned = result.get(WARN_KEY) or {}
        deny = {rs: sorted(result.get(rs) or [], key=_finding_key) for rs in rule_sets}
        warn = {rs: sorted(warned.get(rs) or [], key=_finding_key) for rs in rule_sets}
        return deny, warn

    # -- Rego tests -----------------------------------------------------------------------------

    def tests(self) -> list[tuple[str, int, str, str]]:
        """(file, line, package, rule) for every ``test_*`` rule of every ``*_test.rego``."""
        out = []
        for name, text in self.sources.items():
            if not name.endswith("_test.rego"):
                continue
            pkg = _PACKAGE.search(text)
            if not pkg:
                continue
            seen = set()
            for m in _TEST_RULE.finditer(text):
                if m.group(1) in seen:  # incremental definitions: one test, several bodies
                    continue
                seen.add(m.group(1))
                out.append((name, text.count("\n", 0, m.start()) + 1, pkg.group(1), m.group(1)))
        return out

    def run_test(self, file: str, line: int, package: str, name: str) -> RegoTest:
        """Evaluate one test rule: passed iff it is true (undefined means a failed expression)."""
        from opa_bindings import OpaError, OpaUndefinedError

        try:
            value = self.engine().eval_document(f"{package}.{name}")
        except OpaUndefinedError:
            return RegoTest(file, line, package, name, False, "undefined (an expression in the test was false)")
        except OpaError as e:
            return RegoTest(file, line, package, name, False, _opa_message(e.message))
        return RegoTest(file, line, package, name, value is True, None if value is True else f"value {value!r}")

    def run_tests(self) -> list[RegoTest]:
        return [self.run_test(*t) for t in self.tests()]


_CACHE: dict[str, PolicySet] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 8  # policy versions kept compiled; a long-running process sees few edits


def load(directory: str | Path | None = None) -> PolicySet:
    """The PolicySet for ``directory`` (default ``policy_dir()``), shared while its files are unchanged.

    Files are re-read on every call (a few small files, well under a millisecond) and the compiled
    set is reused when their content hash matches, so an edited policy is picked up without a restart.
    """
    fresh = PolicySet.read(Path(directory) if directory is not None else policy_dir())
    with _CACHE_LOCK:
        cached = _CACHE.pop(fresh.digest, None) or fresh
        _CACHE[fresh.digest] = cached  # most recently used last
        while len(_CACHE) > _CACHE_SIZE:
            del _CACHE[next(iter(_CACHE))]
        return cached


WARN_KEY = "_warn"  # beside the rule set names in the query's result; no rule set of HMS starts with "_"


def _query(rule_sets: tuple[str, ...]) -> str:
    """Every ``deny`` set by name, and under ``_warn`` every ``warn`` set (empty where a rule set has none:
    a comprehension over an undefined set is empty, where the set itself would make the query undefined)."""
    body = ", ".join(f'"{rs}": data.{rs}.deny' for rs in rule_sets)
    warn = ", ".join(f'"{rs}": {{f | some f in data.{rs}.warn}}' for rs in rule_sets)
    return f"x := {{{body}, \"{WARN_KEY}\": {{{warn}}}}}"


def _located(message: str) -> tuple[str | None, str]:
    """Split OPA's leading ``file:line:`` off its message, so the CLI prints it as the place."""
    m = re.match(r"^(\S+?\.rego:\d+(?::\d+)?):\s*(.*)$", message, re.DOTALL)
    return (m.group(1), m.group(2)) if m else (None, message)


def _finding_key(f: Mapping[str, Any]) -> tuple[str, str]:
    return (str(f.get("path", "")), str(f.get("message", "")))


def _opa_message(message: str) -> str:
    """OPA's error text without its '1 error occurred:' preamble, one error per line."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip() and ln.strip() != "^"]
    if lines and re.match(r"^(\d+ errors? occurred:?|bundle activation failed:.*)", lines[0]):
        head = re.sub(r"^.*?errors? occurred:\s*", "", lines[0])
        lines = ([head] if head else []) + lines[1:]
    return "; ".join(lines)


# -- Kubernetes mode: the same files with the OPA image ----------------------------------------------

POD_POLICY_DIR = "/policies"
POD_INPUT_FILE = "/work/opa-input.json"


def opa_container_command(
    rule_sets: Sequence[str],
    *,
    policy_dir: str = POD_POLICY_DIR,
    input_file: str = POD_INPUT_FILE,
) -> list[str]:
    """The ``opa eval`` argv for the ``openpolicyagent/opa`` image over the same policy files.

    The step pod mounts include/policies (a ConfigMap or the hms image's copy) at ``policy_dir``
    and an init container writes the OPA input with ``hms scan pkg.tgz --write-input FILE`` (the
    exact input the in-process engine sees). The output is ``{"privacy": [...], ...}`` under
    ``result[0].expressions[0].value`` (``--format json``), the warnings under its ``"_warn"`` key;
    ``--fail-defined`` is not used because an empty deny set is still defined — read the counts
    from the JSON. The image's entrypoint is
    ``opa``, so this list is the container's ``args``; prefix ``opa`` for a shell.
    """
    names = tuple(rule_sets)
    return [
        "eval",
        "--format",
        "json",
        "--data",
        policy_dir,
        "--ignore",
        "*_test.rego",
        "--ignore",
        "..*",  # a ConfigMap volume's hidden ..data/ copies, which would load every module twice
        "--input",
        input_file,
        _query(names).removeprefix("x := "),
    ]


def opa_test_command(*, policy_dir: str = POD_POLICY_DIR) -> list[str]:
    """The ``opa test`` argv for the image: the Rego tests ``hms scan --test-policies`` runs in-process."""
    return ["test", "--verbose", "--ignore", "..*", policy_dir]

"""Columns a synthetic population draws from a protocol's declared inputs.

The synthetic generator (population.py) knows a handful of household columns — size, income,
age, county, insurance. A protocol may read anything it declares (``has_elderly_member``,
``county_code``, ``monthly_energy_cost``), and refusing every protocol not shaped like the two
samples would make the pipeline useless for new law. So a synthetic population (``synthetic:N``
or a catalog entry with a synthetic source) *synthesizes* each column the rules read that the
generator lacks, or whose generator column does not fit the declaration, from the declaration
itself: type, ``minimum``/``maximum``, ``enum``, shaped by an optional ``synthetic`` hint.

Why it is built this way:

- Deterministic per (seed, column name): each column has its own PCG64 stream seeded from the
  SHA-256 of the population seed and the column name (``column_rng``), so adding, dropping or
  reordering other columns never changes it, and the same seed and protocol give the same
  figures on every machine (Python's ``hash()`` is salted per process, so it is not used).
- Vectorized: one NumPy draw per column, never a Python loop per row; 1M rows stay fast.
- Honest: every synthesized column comes back as a ``SynthesizedColumn`` saying how it was
  drawn, and the simulation output, the HTML report and the clerk's card show them, because a
  budget figure built on invented data must say so.
- File populations never synthesize (population.complete_for): a missing column there is an
  error that says how to supply it.

Defaults without a hint: a boolean is true with probability 0.5; an enum's values are equally
likely; an integer or number is uniform over [minimum, maximum]. A bound that is not declared
is replaced by a default span (``DEFAULT_SPAN``: 100 for integers, 10,000 for numbers) from
the other bound, or from 0, and the description says so. A string without an enum draws from
the values the rules can tell apart: the keys of the tables it indexes, else the literals the
rules compare it with plus ``"(other)"``, else a few placeholders.

Hints (``inputs.<name>.synthetic``), checked strictly when the protocol loads (``check_hints``):

    share_true: 0.3                                 boolean inputs without an enum
    weights: {a: 2, b: 1}                           enum inputs (name every value; 0 leaves one out),
                                                    or strings without an enum (the values to draw)
    distribution: uniform                           integer / number: the default
    distribution: normal, mean: M, sd: S            clipped to the declared bounds
    distribution: lognormal, median: M, sigma: S    clipped to the declared bounds
Integers drawn from a continuous distribution are rounded to the nearest whole number.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hms.errors import BadInput
from hms.numbers import MAX_EXACT
from hms.rules import RuleSet, ir

# Where a problem sits: a path under the input's declaration, e.g. ("synthetic", "share_true").
Locator = Callable[[tuple[str, ...]], str]

DEFAULT_SHARE_TRUE = 0.5
DEFAULT_SPAN = {"integer": 100, "number": 10_000}
OTHER = "(other)"
PLACEHOLDERS = 5
MAX_LISTED = 12  # values a description lists before it only counts them
_HINTS_FOR = {
    "boolean": ("share_true",),
    "enum": ("weights",),
    "string": ("weights",),
    "integer": ("distribution", "mean", "sd", "median", "sigma"),
    "number": ("distribution", "mean", "sd", "median", "sigma"),
}
_DISTRIBUTION_PARAMS = {"uniform": (), "normal": ("mean", "sd"), "lognormal": ("median", "sigma")}


@dataclass(frozen=True)
class SynthesizedColumn:
    """A column the population did not have, and how it was drawn (shown with every figure built on it)."""

    name: str
    how: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "how": self.how}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SynthesizedColumn:
        return cls(name=str(d["name"]), how=str(d["how"]))


# ---- plans: how one column is drawn -----------------------------------------------------------


@dataclass(frozen=True)
class Bernoulli:
    """Booleans, true with a fixed probability."""

    share_true: float
    origin: str

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.random(n) < self.share_true

    def how(self) -> str:
        return f"boolean, true with probability {_num(self.share_true)} ({self.origin})"


@dataclass(frozen=True)
class Choice:
    """One of a fixed list of values with given weights (inverse CDF over one uniform per row)."""

    values: tuple[bool | float | str, ...]
    weights: tuple[float, ...]
    dtype: type
    origin: str

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        cdf = np.cumsum(np.asarray(self.weights, dtype=np.float64))
        cdf /= cdf[-1]
        codes = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)
        return np.asarray(self.values, dtype=self.dtype)[codes]

    def how(self) -> str:
        total = math.fsum(self.weights)
        equal = len(set(self.weights)) == 1
        shown = [
            _value(v) if equal else f"{_value(v)} {100 * w / total:.1f} %"
            for v, w in zip(self.values[:MAX_LISTED], self.weights, strict=False)
        ]
        if len(self.values) > MAX_LISTED:
            shown.append(f"… ({len(self.values)} values)")
        return f"one of {', '.join(shown)}{', equally likely' if equal else ''} ({self.origin})"


@dataclass(frozen=True)
class Uniform:
    """Uniform over [low, high]: integers each equally likely, numbers continuous."""

    low: float
    high: float
    integer: bool
    origin: str

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.integer:
            return rng.integers(int(self.low), int(self.high), n, endpoint=True, dtype=np.int64)
        return rng.uniform(self.low, self.high, n)

    def how(self) -> str:
        kind = "integer" if self.integer else "number"
        return f"{kind}, uniform over [{_num(self.low)}, {_num(self.high)}] ({self.origin})"


@dataclass(frozen=True)
class Normal:
    """Normal(mean, sd), clipped to the declared bounds (rounded for integers)."""

    mean: float
    sd: float
    low: float | None
    high: float | None
    integer: bool

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return _finish(self.mean + self.sd * rng.standard_normal(n), self.low, self.high, self.integer)

    def how(self) -> str:
        kind = "integer" if self.integer else "number"
        return f"{kind}, normal with mean {_num(self.mean)} and sd {_num(self.sd)}{_clip(self)} (synthetic hint)"


@dataclass(frozen=True)
class LogNormal:
    """Log-normal with a median and a sigma (of the log), clipped to the declared bounds."""

    median: float
    sigma: float
    low: float | None
    high: float | None
    integer: bool

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raw = np.exp(math.log(self.median) + self.sigma * rng.standard_normal(n))
        return _finish(raw, self.low, self.high, self.integer)

    def how(self) -> str:
        kind = "integer" if self.integer else "number"
        return (
            f"{kind}, log-normal with median {_num(self.median)} and sigma {_num(self.sigma)}{_clip(self)}"
            " (synthetic hint)"
        )


ColumnPlan = Bernoulli | Choice | Uniform | Normal | LogNormal


def _finish(x: np.ndarray, low: float | None, high: float | None, integer: bool) -> np.ndarray:
    if integer:
        x = np.rint(x)
        low = None if low is None else math.ceil(low)
        high = None if high is None else math.floor(high)
    if low is not None or high is not None:
        x = np.clip(x, low, high)
    return x.astype(np.int64) if integer else x


def _clip(plan: Normal | LogNormal) -> str:
    if plan.low is None and plan.high is None:
        return ""
    lo = "-∞" if plan.low is None else _num(plan.low)
    hi = "∞" if plan.high is None else _num(plan.high)
    return f", clipped to [{lo}, {hi}]"


def _num(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _value(v: bool | float | str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return _num(v)
    return repr(v)


# ---- from a declaration to a plan ---------------------------------------------------------------


def plan_for(
    name: str, decl: Mapping[str, Any], at: Locator, *, string_values: tuple[tuple[str, ...], str] = ((), "")
) -> ColumnPlan:
    """How column ``name`` is drawn from its declaration ``decl``; a bad hint is ``BadInput`` at its field.

    ``string_values`` (values, where they came from) serves a string input without an enum or
    weights: the caller reads them off the rules (``string_domain``).
    """
    kind = decl["type"]
    hint = decl.get("synthetic") or {}
    family = "enum" if "enum" in decl else kind
    allowed = _HINTS_FOR[family]
    for key in hint:
        if key not in allowed:
            what = f"a {kind} input with an enum" if family == "enum" else f"a {kind} input"
            raise BadInput(
                f"synthetic hint {key!r} does not apply to {what}; use {' or '.join(allowed)}",
                where=at(("synthetic", key)),
            )
    if family == "enum":
        return _enum_plan(name, decl, hint, at)
    if kind == "boolean":
        if "share_true" in hint:
            return Bernoulli(float(hint["share_true"]), "synthetic hint")
        return Bernoulli(DEFAULT_SHARE_TRUE, "default: no synthetic hint")
    if kind == "string":
        if "weights" in hint:
            values = tuple(hint["weights"])
            return Choice(values, _weights(hint["weights"], at), np.str_, "synthetic hint")
        values, origin = string_values
        if not values:
            values = tuple(f"{name}_{i}" for i in range(1, PLACEHOLDERS + 1))
            origin = "placeholders: no enum declared and no value in the rules"
        return Choice(values, (1.0,) * len(values), np.str_, origin)
    return _numeric_plan(decl, hint, at)


def _weights(weights: Mapping[str, Any], at: Locator) -> tuple[float, ...]:
    out = tuple(float(w) for w in weights.values())
    if not math.fsum(out) > 0:
        raise BadInput("synthetic weights must not all be 0", where=at(("synthetic", "weights")))
    return out


def _enum_plan(name: str, decl: Mapping[str, Any], hint: Mapping[str, Any], at: Locator) -> Choice:
    kind = decl["type"]
    values = tuple(decl["enum"])
    dtype = {"boolean": np.bool_, "string": np.str_}.get(kind, np.float64)
    wrong = [v for v in values if _enum_key(v)[0] != {"boolean": "b", "string": "s"}.get(kind, "n")]
    if wrong:
        raise BadInput(f"enum value {_value(wrong[0])} is not a {kind}: it cannot be drawn", where=at(("enum",)))
    if "weights" not in hint:
        return Choice(values, (1.0,) * len(values), dtype, "declared enum, no synthetic hint")
    keys = {_enum_key(v): v for v in values}
    given: dict[Any, float] = {}
    for key, w in hint["weights"].items():
        k = _weight_key(key, kind)
        if k not in keys:
            close = difflib.get_close_matches(str(key), [_value(v).strip("'") for v in values], n=1)
            tip = f"; did you mean {close[0]!r}?" if close else f"; the enum is {', '.join(map(_value, values))}"
            raise BadInput(f"weight for {key!r}: not a value of {name}'s enum{tip}",
                           where=at(("synthetic", "weights", str(key))))
        given[k] = float(w)
    unnamed = [_value(v) for k, v in keys.items() if k not in given]
    if unnamed:
        raise BadInput(
            f"synthetic weights must name every enum value (give 0 to leave one out); missing: {', '.join(unnamed)}",
            where=at(("synthetic", "weights")),
        )
    weights = tuple(given[_enum_key(v)] for v in values)
    if not math.fsum(weights) > 0:
        raise BadInput("synthetic weights must not all be 0", where=at(("synthetic", "weights")))
    return Choice(values, weights, dtype, "synthetic hint")


def _enum_key(v: Any) -> Any:
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, int | float):
        return ("n", float(v))
    return ("s", v)


def _weight_key(key: str, kind: str) -> Any:
    """A weights key (always a string after loading) as the enum value it names."""
    if kind == "boolean":
        return ("b", key == "true") if key in ("true", "false") else ("s", key)
    if kind in ("integer", "number"):
        try:
            return ("n", float(key))
        except ValueError:
            return ("s", key)
    return ("s", key)


def _numeric_plan(decl: Mapping[str, Any], hint: Mapping[str, Any], at: Locator) -> ColumnPlan:
    integer = decl["type"] == "integer"
    low, high = decl.get("minimum"), decl.get("maximum")
    if low is not None and high is not None and low > high:
        raise BadInput(f"minimum {_num(low)} is above maximum {_num(high)}: no value can be drawn", where=at(()))
    if integer and low is not None and high is not None and math.ceil(low) > math.floor(high):
        raise BadInput(f"no integer lies in [{_num(low)}, {_num(high)}]", where=at(()))
    for bound in (low, high):
        if integer and bound is not None and abs(bound) > MAX_EXACT:
            raise BadInput("integer bound beyond 2**53: draw it from a file population", where=at(()))
    params = {k: hint[k] for k in ("mean", "sd", "median", "sigma") if k in hint}
    distribution = hint.get("distribution")
    if distribution is None and params:
        first = next(iter(params))
        need = next(d for d, ps in _DISTRIBUTION_PARAMS.items() if first in ps)
        raise BadInput(f"{first!r} needs 'distribution: {need}'", where=at(("synthetic", first)))
    distribution = distribution or "uniform"
    wanted = _DISTRIBUTION_PARAMS[distribution]
    for key in params:
        if key not in wanted:
            fits = next(d for d, ps in _DISTRIBUTION_PARAMS.items() if key in ps)
            raise BadInput(f"{key!r} applies to distribution {fits}, not {distribution}", where=at(("synthetic", key)))
    for key in wanted:
        if key not in params:
            raise BadInput(f"distribution {distribution} needs {' and '.join(wanted)}", where=at(("synthetic", key)))
    if distribution == "uniform":
        return _uniform(decl["type"], low, high, "synthetic hint" if hint else "default: no synthetic hint")
    centre_key = "mean" if distribution == "normal" else "median"
    centre = float(params[centre_key])
    if (low is not None and centre < low) or (high is not None and centre > high):
        lo = "-∞" if low is None else _num(low)
        hi = "∞" if high is None else _num(high)
        raise BadInput(f"{centre_key} {_num(centre)} lies outside the declared range [{lo}, {hi}]",
                       where=at(("synthetic", centre_key)))
    if distribution == "normal":
        return Normal(centre, float(params["sd"]), low, high, integer)
    return LogNormal(centre, float(params["sigma"]), low, high, integer)


def _uniform(kind: str, low: float | None, high: float | None, origin: str) -> Uniform:
    span = DEFAULT_SPAN[kind]
    notes = []
    if low is None and high is None:
        low, high = 0, span
        notes.append(f"no minimum or maximum declared: default span {span:,} from 0")
    elif high is None:
        high = low + span
        notes.append(f"no maximum declared: default span {span:,}")
    elif low is None:
        low = high - span
        notes.append(f"no minimum declared: default span {span:,}")
    if kind == "integer":
        low, high = math.ceil(low), math.floor(high)
    return Uniform(float(low), float(high), kind == "integer", "; ".join([origin, *notes]))


def check_hints(inputs: Mapping[str, Mapping[str, Any]], at: Callable[[str], Locator]) -> None:
    """Refuse a bad ``synthetic`` hint when the protocol loads (exit 2, naming the field).

    Only inputs that carry a hint are checked here, so a protocol without hints loads exactly as
    before; an unusable declaration without a hint is reported when a population synthesizes it.
    """
    for name, decl in inputs.items():
        if "synthetic" in decl:
            plan_for(name, decl, at(name))


# ---- drawing ----------------------------------------------------------------------------------------


def column_rng(seed: int, name: str) -> np.random.Generator:
    """The column's own random stream: a stable hash of (seed, name), independent of every other column."""
    digest = hashlib.sha256(f"hms.synthetic-column/v1\x00{seed}\x00{name}".encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "big")))


def synthesize(
    name: str, decl: Mapping[str, Any], ruleset: RuleSet, *, seed: int, n: int, at: Locator, replaces: str = ""
) -> tuple[np.ndarray, SynthesizedColumn]:
    """Draw column ``name`` for ``n`` rows; ``replaces`` says why a generator column was set aside."""
    values = string_domain(ruleset, name) if decl["type"] == "string" and "enum" not in decl else ((), "")
    plan = plan_for(name, decl, at, string_values=values)
    how = plan.how()
    if replaces:
        how += f"; replaces the generator's column, which does not fit the declaration ({replaces})"
    return plan.draw(column_rng(seed, name), n), SynthesizedColumn(name, how)


def string_domain(ruleset: RuleSet, name: str) -> tuple[tuple[str, ...], str]:
    """Values a string input without an enum can take that the rules tell apart, and where they came from.

    The keys of a string table it indexes (so no lookup misses), else the literals the rules compare
    it with plus ``"(other)"`` (so both branches of a comparison are exercised).
    """
    tables: list[set[str]] = []
    literals: set[str] = set()

    def visit(node: ir.Node) -> None:
        match node:
            case ir.Lookup(table=t, keys=ks):
                for level, k in enumerate(ks):
                    if _is_input(k, name):
                        tables.append({str(key) for key in ruleset.tables[t].keys_at(level)})
            case ir.Has(table=t, keys=ks):  # both answers of has() are meant: its keys plus '(other)'
                for level, k in enumerate(ks):
                    if _is_input(k, name):
                        literals.update(str(key) for key in ruleset.tables[t].keys_at(level))
            case ir.InTuple(operand=ir.Name(name=n, kind="input"), values=vs) if n == name:
                literals.update(v for v in vs if isinstance(v, str))
            case ir.Compare(operands=ops):
                for a, b in itertools.pairwise(ops):
                    for x, y in ((a, b), (b, a)):
                        if _is_input(x, name) and isinstance(y, ir.Const) and isinstance(y.value, str):
                            literals.add(y.value)
        for f in dataclasses.fields(node):
            child = getattr(node, f.name)
            for c in child if isinstance(child, tuple) else (child,):
                if isinstance(c, ir.Node):
                    visit(c)

    for rule in ruleset.rules:
        visit(rule.expr)
    return _domain(tables, literals)


def _is_input(node: ir.Node, name: str) -> bool:
    return isinstance(node, ir.Name) and node.kind == "input" and node.name == name


def _domain(tables: list[set[str]], literals: set[str]) -> tuple[tuple[str, ...], str]:
    if tables:
        keys = sorted(set.intersection(*tables)) or sorted(tables[0])
        return tuple(keys), "the keys of the table it indexes; no enum declared"
    if literals:
        values = sorted(literals) + ([OTHER] if OTHER not in literals else [])
        return tuple(values), "the values the rules compare it with plus '(other)'; no enum declared"
    return (), ""


__all__ = [
    "DEFAULT_SHARE_TRUE",
    "DEFAULT_SPAN",
    "ColumnPlan",
    "SynthesizedColumn",
    "check_hints",
    "column_rng",
    "plan_for",
    "string_domain",
    "synthesize",
]

"""Population simulation: the budget gate, the baseline diff and the fairness figures.

``simulate`` runs a protocol's vectorized rules over a population (population.py) and
reduces them to the figures a promotion decision needs: the weighted number of
households selected, the total cost against ``budget.cap``, the change against a
baseline version (usually the one live in prod), and the selection rate per
demographic group with the four-fifths ratio that the compliance scan checks.

Money is exact. Each record's amount is counted in whole cents (rounded half to even,
as a payment would be), and totals are integer sums: with integer weights every
partial sum is an integer below 2**53, so a float64 dot product is exact whatever the
summation order, and beyond that bound we fall back to int64 or Python integers.
Fractional weights use a correctly rounded ``math.fsum``. Nothing is ever float32
(OpenFisca's float32 totals drift by tens of dollars on a billion).

Long runs are evaluated in chunks so memory stays bounded and a progress callback can
report; the per-chunk figures are plain sums, so chunking never changes a result.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import numpy as np

from hms.column_synthesis import SynthesizedColumn
from hms.dated import combine
from hms.errors import BadInput, EvaluationError
from hms.fairness_groups import DeclaredGroup, declared_groups
from hms.periods import Period
from hms.population import INCOME, SIZE, Population, complete_for, resolve
from hms.population_stream import BATCH_ROWS, Chunk, PopulationFile, decile_of
from hms.protocol import Protocol, boolean_outputs

CHUNK_ROWS = 1 << 18  # rows evaluated at once: 2 MiB a float column, cache-sized (256k measured fastest)
HISTOGRAM_BINS = 20
FOUR_FIFTHS = 0.8
Progress = Callable[[int, int | None], None]  # rows done, rows in all (None: a CSV file, not yet known)
_EXACT = 2.0**52  # integer sums below this are exact in float64 in any order (with margin)


# ---- exact sums ----------------------------------------------------------------


def exact_weighted_sum(values: np.ndarray, weights: np.ndarray, integral: bool) -> int | float:
    """Sum of ``values * weights`` for integer-valued ``values`` (cents or 0/1).

    Integer weights give an exact Python ``int``; fractional weights a float64 total
    correctly rounded from the (once-rounded) products.
    """
    if len(values) == 0:
        return 0
    if not integral:
        return math.fsum((values * weights).tolist())
    bound = max(float(values.max()), -float(values.min())) * float(weights.sum())
    if bound < _EXACT:
        return int(np.einsum("i,i->", values, weights))  # einsum: no BLAS threads (steadier on small boxes)
    if bound < 2.0**62:
        return int(np.dot(values.astype(np.int64), weights.astype(np.int64)))
    return sum(int(v) * int(w) for v, w in zip(values.tolist(), weights.tolist(), strict=True) if v)


def to_cents(amount: np.ndarray) -> np.ndarray:
    """Per-record amounts in whole cents (float64 holding integers; half to even like ``round``)."""
    cents = np.asarray(amount, dtype=np.float64) * 100.0
    if cents.ndim == 0:
        return np.rint(cents)
    return np.rint(cents, out=cents)  # a new array already: rounded where it is, not copied again


# ---- result ----------------------------------------------------------------------


@dataclass
class SimulationResult:
    """Every figure of one run; ``to_dict`` is the pipeline's JSON, ``lines`` the human summary."""

    protocol_id: str
    version: int
    title: str
    sha256: str | None
    population: dict[str, Any]
    outcome: str
    amount_rule: str | None
    currency: str
    cap: float | None
    cost_cents: int | float
    eligible: float
    eligible_rows: int
    fairness: dict[str, Any]
    groups: dict[str, dict[str, dict[str, float]]]
    seconds: float
    by_household_size: list[dict[str, Any]] | None = None
    by_income_decile: list[dict[str, Any]] | None = None
    amounts: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    # Columns the population lacked, drawn from the declared inputs: the figures rest on invented data.
    synthesized_columns: list[SynthesizedColumn] = field(default_factory=list)
    # The cap's period, and what one record's amount covers: every money figure is per ``period``.
    period: str = "year"
    amount_period: str = "year"
    evaluated_period: str | None = None  # the period the rules were evaluated for (dated parameters), e.g. 2025-03

    @property
    def per_period(self) -> str:
        """``per year`` or ``per year (monthly amounts × 12)``: what every money figure is measured over."""
        factor = periods_factor(self.amount_period, self.period)
        return f"per {self.period}" + (f" ({self.amount_period}ly amounts × {factor})" if factor != 1 else "")

    @property
    def cost(self) -> float:
        return self.cost_cents / 100

    @property
    def cap_cents(self) -> int | None:
        return None if self.cap is None else round(self.cap * 100)

    @property
    def over_budget(self) -> bool:
        return self.cap_cents is not None and self.cost_cents > self.cap_cents

    @property
    def share_of_cap(self) -> float | None:
        return None if not self.cap else self.cost / self.cap

    @property
    def ok(self) -> bool:
        return not self.over_budget

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "protocol": {"id": self.protocol_id, "version": self.version, "title": self.title, "sha256": self.sha256},
            "population": self.population,
            "outcome": self.outcome,
            "amount_rule": self.amount_rule,
            "currency": self.currency,
            "cost": self.cost,
            "cost_cents": self.cost_cents,
            "cap": self.cap,
            "share_of_cap": self.share_of_cap,
            "over_budget": self.over_budget,
            "eligible": self.eligible,
            "eligible_rows": self.eligible_rows,
            "fairness": self.fairness,
            "groups": self.groups,
            "by_household_size": self.by_household_size,
            "by_income_decile": self.by_income_decile,
            "amounts": self.amounts,
            "baseline": self.baseline,
            "seconds": round(self.seconds, 4),
            "notes": self.notes,
            "synthesized_columns": [c.to_dict() for c in self.synthesized_columns],
            "period": self.period,
            "amount_period": self.amount_period,
            "evaluated_period": self.evaluated_period,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SimulationResult:
        """The inverse of ``to_dict``: the clerk page redraws the report from the result the test step recorded."""
        p = d["protocol"]
        return cls(
            protocol_id=p["id"],
            version=p["version"],
            title=p["title"],
            sha256=p.get("sha256"),
            population=d["population"],
            outcome=d["outcome"],
            amount_rule=d.get("amount_rule"),
            currency=d["currency"],
            cap=d.get("cap"),
            cost_cents=d["cost_cents"],
            eligible=d["eligible"],
            eligible_rows=d["eligible_rows"],
            fairness=d.get("fairness") or {},
            groups=d.get("groups") or {},
            seconds=d.get("seconds", 0.0),
            by_household_size=d.get("by_household_size"),
            by_income_decile=d.get("by_income_decile"),
            amounts=d.get("amounts"),
            baseline=d.get("baseline"),
            notes=list(d.get("notes") or ()),
            synthesized_columns=[SynthesizedColumn.from_dict(c) for c in d.get("synthesized_columns") or ()],
            period=d.get("period", "year"),
            amount_period=d.get("amount_period", "year"),
            evaluated_period=d.get("evaluated_period"),
        )

    def synthesized_lines(self) -> list[str]:
        """A warning and one line per synthesized column: what was invented and how it was drawn."""
        cols = self.synthesized_columns
        if not cols:
            return []
        n = len(cols)
        return [
            f"[simulate] ⚠️ synthesized data: {n} column{'s' if n > 1 else ''} the population lacks "
            f"{'were' if n > 1 else 'was'} drawn from the protocol's declared inputs; the figures rest on "
            "invented values",
            *(f"[simulate]   synthesized {c.name}: {c.how}" for c in cols),
        ]

    def money(self, cents: float, *, sign: bool = False) -> str:
        return format_money(cents, self.currency, sign=sign)

    def lines(self) -> list[str]:
        """The seed's one-line-per-figure style."""
        pop = self.population
        out = [
            f"[simulate] {self.protocol_id} v{self.version} on {pop['source']}: "
            f"{pop['rows']:,} rows = {format_count(pop['households'])} households"
            + (f", rules evaluated for {self.evaluated_period}" if self.evaluated_period else "")
        ]
        out.extend(self.synthesized_lines())
        eligible = f"{format_count(self.eligible)} {self.outcome} (weighted)"
        cost, per = f"cost {self.money(self.cost_cents)}", self.per_period
        if self.cap is None:
            out.append(f"[simulate] ✅ {cost} {per} (no budget cap) — {eligible}")
        elif self.over_budget:
            out.append(
                f"[simulate] ❌ over budget: {cost} > cap {self.money(self.cap_cents or 0)} {per}"
                f" ({100 * (self.share_of_cap or 0):.1f} %) — {eligible}"
            )
        else:
            out.append(
                f"[simulate] ✅ {cost} of cap {self.money(self.cap_cents or 0)} {per}"
                f" ({100 * (self.share_of_cap or 0):.1f} %) — {eligible}"
            )
        for attr, f in self.fairness["attributes"].items():
            mark = "✅" if f["ratio"] >= FOUR_FIFTHS else "⚠️"
            rates = f["rates"]
            out.append(
                f"[simulate] {mark} fairness {attr}: four-fifths ratio {f['ratio']:.3f} "
                f"(lowest {f['lowest_group']} {100 * rates[f['lowest_group']]:.1f} % vs "
                f"{f['reference_group']} {100 * rates[f['reference_group']]:.1f} %)"
            )
        for attr, f in self.fairness.get("amount_attributes", {}).items():
            means = f["means"]
            out.append(
                f"[simulate] fairness {attr} on {self.fairness['amount']}: mean amount ratio {f['ratio']:.3f} "
                f"(lowest {f['lowest_group']} {self.money(100 * means[f['lowest_group']])} vs "
                f"{f['reference_group']} {self.money(100 * means[f['reference_group']])} per household)"
            )
        for attr, f in self.fairness.get("declared", {}).items():
            exempt = f", exempt: {f['exemption']}" if f.get("exemption") else ""
            out.append(
                f"[simulate] protected input {attr} ({f['characteristic']}{exempt}): selection-rate ratio "
                f"{f['ratio']:.3f} (lowest {f['lowest_group']} {100 * f['rates'][f['lowest_group']]:.1f} % vs "
                f"{f['reference_group']} {100 * f['rates'][f['reference_group']]:.1f} %; shown, not gated)"
            )
        b = self.baseline
        if b is not None:
            delta = b["cost_delta_cents"]
            pct = f" ({100 * delta / b['cost_cents']:+.1f} %)" if b["cost_cents"] else ""
            out.append(
                f"[simulate] baseline {b['protocol']['id']} v{b['protocol']['version']}"
                f"{' (' + b['label'] + ')' if b.get('label') else ''}: cost {self.money(b['cost_cents'])} → "
                f"{self.money(self.cost_cents)}, delta {self.money(delta, sign=True)}{pct}"
            )
            out.append(
                f"[simulate] baseline diff: {format_count(b['newly_eligible'])} newly eligible, "
                f"{format_count(b['losing_eligibility'])} losing eligibility; "
                f"{format_count(b['winners'])} gain {self.money(b['gains_cents'])}, "
                f"{format_count(b['losers'])} lose {self.money(b['losses_cents'])}"
            )
        out.extend(f"[simulate] note: {n}" for n in self.notes)
        return out


def format_money(cents: float, currency: str = "USD", *, sign: bool = False) -> str:
    """``$1,234,567`` (cents shown only when there are any); other currencies by code."""
    neg = cents < 0
    c = abs(cents)
    whole, frac = divmod(round(c), 100)
    text = f"{whole:,}" + (f".{frac:02d}" if frac else "")
    text = f"${text}" if currency == "USD" else f"{currency} {text}"
    return ("-" if neg else "+" if sign else "") + text


def format_count(x: float) -> str:
    return f"{round(x):,}" if abs(x - round(x)) < 1e-9 else f"{x:,.1f}"


# ---- the run -----------------------------------------------------------------------


def _unwrap(subject: Any, what: str) -> tuple[Protocol, str | None]:
    if isinstance(subject, Protocol):
        return subject, None
    proto = getattr(subject, "protocol", None)
    if isinstance(proto, Protocol):
        return proto, getattr(subject, "sha256", None)
    raise TypeError(f"{what} must be a Bundle or a Protocol, not {type(subject).__name__}")


def outcome_rule(proto: Protocol) -> str | None:
    """The selection rule the protocol names (``budget.eligible``, or its only boolean output).

    None when it has no boolean output: then the selected are those with a non-zero amount, and the
    figures say so. Several boolean outputs and none named is refused: which one the fairness figures
    measure is the protocol's choice, never ours.
    """
    name = proto.eligibility_rule
    if name is None and len(boolean_outputs(proto.ruleset, proto.outputs)) > 1:
        raise BadInput(
            "the protocol has several boolean outputs and names none in budget.eligible: the simulation "
            "cannot choose which one the eligibility and fairness figures are computed on",
            where=proto.source,
        )
    return name


PERIODS_PER_YEAR = {"month": 12, "year": 1}


def periods_factor(amount_period: str, cap_period: str) -> int:
    """How many times one record's amount counts against the cap: 12 for a monthly amount and a yearly cap."""
    return PERIODS_PER_YEAR[amount_period] // PERIODS_PER_YEAR[cap_period]


def _per_household(proto: Protocol, rule: str) -> bool:
    """A rule with one value per population row: any rule of a flat protocol, a group rule of an entity one."""
    model = proto.ruleset.model
    return model is None or model.rule_entity[rule] == model.group


def amount_rule(proto: Protocol) -> str | None:
    name = proto.budget_amount
    rs = proto.ruleset
    return name if name in rs.by_name and rs.type_of(name) == "num" and _per_household(proto, name) else None


def population_for(
    proto: Protocol, population: Population | PopulationFile | str | None
) -> Population | PopulationFile:
    if isinstance(population, Population | PopulationFile):
        return population
    if population is None:
        source = (proto.budget or {}).get("population")
        if not source:
            raise BadInput(
                "the protocol has no budget.population; give a population (--population)", where=proto.source
            )
        return resolve(source, where=f"{proto.source}: budget.population")
    return resolve(population, where="--population")


class _Side:
    """One protocol evaluated chunk by chunk: its selection and per-record cents."""

    def __init__(
        self,
        proto: Protocol,
        pop: Population | PopulationFile,
        role: str = "",
        cap_period: str | None = None,
        period: Period | None = None,
    ) -> None:
        self.proto = proto
        self.period = period
        # One rule set, or one per month when a dated value changes inside the period (straddle: sum_months).
        self.rulesets = [rs for _, rs in proto.plan(period)]
        self.factor = periods_factor(proto.amount_period, cap_period or proto.budget_period)
        self.outcome = outcome_rule(proto)
        self.amount = amount_rule(proto)
        if self.outcome is None and self.amount is None:
            raise BadInput(
                "the protocol has neither a boolean output nor an amount rule to simulate", where=proto.source
            )
        self.persons = None
        self.subgroups = proto.ruleset.model.subgroups if proto.ruleset.model is not None else ()
        self.where = pop.source + (f" ({role})" if role else "")
        self.columns: dict[str, np.ndarray] | None = None  # checked once (in memory); None: per chunk (a file)
        if isinstance(pop, PopulationFile):
            return  # a file's columns are checked batch by batch, as they are read (``chunk``)
        if proto.ruleset.model is not None:  # households and their members (hms.person_table)
            self.columns, self.n, self.persons = _household_tables(proto, pop, role)
        else:
            self.columns, self.n = pop.columns_for(proto.ruleset, role=role)

    @property
    def outcome_name(self) -> str:
        return self.outcome or f"{self.amount} != 0"

    def reads(self) -> set[str]:
        return self.proto.ruleset.fields_read()

    def chunk(self, ch: Chunk) -> tuple[np.ndarray, np.ndarray]:
        """(selected, cents) for the chunk's rows."""
        start, stop = ch.start, ch.stop
        try:
            if self.columns is None:
                cols, _ = self.rulesets[0].coerce_columns(ch.columns, where=self.where, first_row=start)
                months = [rs.evaluate_columns(cols, validated=True, n=ch.n) for rs in self.rulesets]
            elif self.persons is None:
                cols = {k: v[start:stop] for k, v in self.columns.items()}
                months = [rs.evaluate_columns(cols, validated=True, n=ch.n) for rs in self.rulesets]
            else:
                cols = {k: v[start:stop] for k, v in self.columns.items()}
                lo, hi = self.persons.rows_for(start, stop)
                people = {k: v[lo:hi] for k, v in self.persons.columns.items()}
                member_of = self.persons.member_of[lo:hi] - start
                subs = {g: self.persons.subs[g].chunk(start, stop, lo, hi) for g in self.subgroups}
                months = [
                    rs.evaluate_groups(cols, people, member_of, n=ch.n, where=self.where, subgroups=subs).group
                    for rs in self.rulesets
                ]
            values = combine(months, self.period)
        except EvaluationError as e:
            if start == 0 or e.row is None:
                raise
            message = e.message.removesuffix(f"; record {e.record}") if e.record is not None else e.message
            raise EvaluationError(message, rule=e.rule, record=e.record, row=e.row + start) from None
        cents = to_cents(values[self.amount]) if self.amount else np.zeros(ch.n)
        if self.factor != 1:
            cents *= self.factor
        selected = values[self.outcome] if self.outcome else cents != 0
        return np.asarray(selected, dtype=bool), cents


def _household_tables(proto: Protocol, pop: Population, role: str) -> tuple[dict[str, np.ndarray], int, Any]:
    """An entity protocol's household columns (checked per chunk by evaluate_groups) and the person table."""
    rs = proto.ruleset
    assert rs.model is not None
    if pop.persons is None:
        raise BadInput(f"the population has no {rs.model.person} table for {proto.id!r}", where=pop.source)
    where = pop.source + (f" ({role})" if role else "")
    columns = {}
    for name in sorted(rs.fields_read() & set(rs.group_specs())):
        if name in pop.empty:
            raise BadInput(f"column {name!r}: row {pop.empty[name]} is empty", where=where)
        if name in pop.columns:
            columns[name] = pop.columns[name]
        elif name in pop.attributes:
            columns[name] = pop.attributes[name].strings()
        else:
            raise BadInput(f"missing column {name!r} (read by the rules)", where=where)
    for g in rs.model.subgroups:
        if g not in pop.persons.subs:
            raise BadInput(
                f"the population's {rs.model.person} table has no {g} sub-groups for {proto.id!r}", where=where
            )
    return columns, pop.n, pop.persons


def simulate(
    subject: Any,
    population: Population | PopulationFile | str | None = None,
    baseline: Any = None,
    progress: Progress | None = None,
    *,
    detail: bool | None = None,
    chunk_rows: int | None = None,
    baseline_label: str | None = None,
    period: Period | None = None,
    batch_rows: int = BATCH_ROWS,
) -> SimulationResult:
    """Simulate a Bundle or Protocol over a population (default: its ``budget.population``).

    A synthetic population first synthesizes the columns the rules read that it lacks
    (population.complete_for); the result names them in ``synthesized_columns``. A file is
    streamed in batches (hms.population_stream): memory follows ``chunk_rows``, not the file.

    ``detail`` (default: on when there is a baseline) adds the breakdowns the report
    draws: by household size, by weighted income decile and the amount distribution.

    Rows go in batches of ``batch_rows`` (``WORKERS`` batches at a time, merged in order) evaluated in
    pieces of ``chunk_rows``; neither changes a figure.
    """
    started = perf_counter()
    proto, sha = _unwrap(subject, "subject")
    bproto, bsha = _unwrap(baseline, "baseline") if baseline is not None else (None, None)
    protos = [proto] if bproto is None else [proto, bproto]
    pop = complete_for(population_for(proto, population), protos)
    streamed = isinstance(pop, PopulationFile)
    period = period or proto.default_period()
    main = _Side(proto, pop, role="", period=period)
    base = None
    if bproto is not None:
        same_unit = period is not None and bproto.period_unit == proto.period_unit
        bperiod = period if same_unit else bproto.default_period()
        base = (_Side(bproto, pop, role="baseline", cap_period=proto.budget_period, period=bperiod), bsha)
    detail = (base is not None) if detail is None else detail
    available = set(pop.names) if streamed else set(pop.columns)
    declared, skipped = declared_groups(protos, available, exclude=_attribute_names(pop))
    edges = pop.decile_edges(INCOME) if (detail or base is not None) else None
    names = main.reads() | (base[0].reads() if base else set()) | {g.name for g in declared}
    if detail:
        names |= {SIZE}
    if edges is not None:
        names |= {INCOME}
    def totals() -> _Totals:
        return _Totals(detail=detail, declared=declared, edges=edges, amount=main.amount is not None)

    rows = max(1, int(chunk_rows or CHUNK_ROWS))

    def run(batch: Chunk) -> _Totals:
        """One batch's figures, in cache-sized pieces; pure, so batches run side by side."""
        part = totals()
        for ch in batch.split(rows):
            sel, cents = main.chunk(ch)
            deciles = part.add(ch, sel, cents)
            if base is not None:
                bsel, bcents = base[0].chunk(ch)
                part.add_baseline(ch, sel, cents, bsel, bcents, deciles)
        return part

    acc = totals()
    for batch, part in _in_order(pop.chunks(names, max(rows, batch_rows)), run, rows):
        acc.merge(part)
        if progress is not None:
            progress(batch.stop, pop.rows)
    budget = proto.budget or {}
    households = acc.households() if streamed else pop.total_weight
    result = SimulationResult(
        protocol_id=proto.id,
        version=proto.version,
        title=proto.title,
        sha256=sha,
        population={
            "source": pop.source,
            "description": pop.description,
            "rows": acc.rows,
            "households": households,
            "provenance": pop.provenance,
            "streamed": streamed,
        },
        outcome=main.outcome_name,
        amount_rule=main.amount,
        currency=str(budget.get("currency", "USD")),
        cap=float(budget["cap"]) if "cap" in budget else None,
        cost_cents=acc.cost_cents,
        eligible=acc.eligible(),
        eligible_rows=acc.eligible_rows,
        fairness=acc.fairness(main.outcome_name, main.amount, skipped),
        period=proto.budget_period,
        amount_period=proto.amount_period,
        evaluated_period=period.label if period is not None else None,
        groups=acc.groups(),
        seconds=0.0,
        notes=list(pop.notes),
        synthesized_columns=list(pop.synthesized),
    )
    if detail:
        result.by_household_size = acc.by_size()
        result.by_income_decile = acc.by_decile()
        result.amounts = acc.amount_histogram()
    if base is not None:
        bside, bsha = base
        result.baseline = acc.baseline_figures(bside.proto, bsha, bside.outcome_name, baseline_label)
        if bside.proto.id != proto.id:
            result.notes.append(f"the baseline is another protocol ({bside.proto.id})")
    if not acc.integral:
        result.notes.append("fractional weights: totals are correctly rounded float64, not integer cents")
    result.seconds = perf_counter() - started
    return result


WORKERS = 2  # batches evaluated at once: NumPy and Arrow release the GIL, so two use both cores of a small box


def _in_order(
    batches: Iterator[Chunk], run: Callable[[Chunk], _Totals], pieces: int = CHUNK_ROWS
) -> Iterator[tuple[Chunk, _Totals]]:
    """``run`` over ``batches`` on ``WORKERS`` threads, results in the batches' order (so every sum is added
    in one order whatever finishes first, and the first failing batch is the one reported). A lone batch of
    at least two ``pieces`` (what ``run`` evaluates at once) is halved, so both cores work on it too."""
    first = next(batches, None)
    if first is None:
        return
    second = next(batches, None)
    if second is None:  # one batch (a million-row file is one row group): its halves side by side
        if first.n < 2 * pieces:
            yield first, run(first)
            return
        half = -(-first.n // (WORKERS * pieces)) * pieces  # whole pieces each, so no piece is split again
        batches = first.split(half)
        first, second = next(batches), next(batches)
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="hms-simulate") as pool:
        inflight: deque[tuple[Chunk, Future[_Totals]]] = deque()
        try:
            for batch in itertools.chain((first, second), batches):
                inflight.append((batch, pool.submit(run, batch)))
                if len(inflight) > WORKERS:
                    done, fut = inflight.popleft()
                    yield done, fut.result()
            while inflight:
                done, fut = inflight.popleft()
                yield done, fut.result()
        finally:
            for _, fut in inflight:
                fut.cancel()


def _attribute_names(pop: Population | PopulationFile) -> tuple[str, ...]:
    return pop.attribute_names if isinstance(pop, PopulationFile) else tuple(pop.attributes)


class _Groups:
    """Weighted sums per combination of group labels, across chunks whose label sets may differ.

    Each chunk is reduced with one ``bincount`` over a joint code of its own labels; the non-empty
    combinations are then added under the labels' global codes (a handful of combinations per chunk).
    """

    def __init__(self) -> None:
        self.labels: dict[str, dict[str, int]] = {}
        self.sums: dict[tuple[int, ...], np.ndarray] = {}

    def add(
        self,
        attrs: Mapping[str, tuple[np.ndarray, tuple[str, ...]]],
        w: np.ndarray,
        sel: np.ndarray,
        cw: np.ndarray | None,
    ) -> np.ndarray:
        """Add a chunk: weights ``w``, selection ``sel``, cents × weight ``cw`` (None: no amount). Returns the
        chunk's (households, selected, cents) per joint group: their totals are the chunk's totals."""
        names = list(attrs)
        for name in names:
            known = self.labels.setdefault(name, {})
            for label in attrs[name][1]:
                known.setdefault(label, len(known))
        radices = [len(attrs[a][1]) for a in names]
        joint = attrs[names[0]][0].astype(np.intp, copy=True)  # built in place: one array for the chunk
        for a, k in zip(names[1:], radices[1:], strict=True):
            joint *= k
            joint += attrs[a][0]
        size = math.prod(radices)
        # the selection is the code's lowest bit: one bincount gives households and selected; the cents of a
        # group are its two halves' together
        joint *= 2
        joint += sel
        both = np.bincount(joint, weights=w, minlength=2 * size).reshape(size, 2)
        cents = (np.bincount(joint, weights=cw, minlength=2 * size).reshape(size, 2).sum(axis=1) if cw is not None
                 else np.zeros(size))
        sums = np.stack([both.sum(axis=1), both[:, 1], cents])
        maps = [[self.labels[a][label] for label in attrs[a][1]] for a in names]
        for j in np.flatnonzero(np.any(sums != 0, axis=0)).tolist():
            combo, rest = [], j
            for k, m in zip(reversed(radices), reversed(maps), strict=True):
                rest, code = divmod(rest, k)
                combo.append(m[code])
            key = tuple(reversed(combo))
            self.sums[key] = self.sums.get(key, 0) + sums[:, j]
        return sums

    def merge(self, other: _Groups) -> None:
        """Add another accumulator's sums under this one's codes (labels matched by name)."""
        names = list(other.labels)
        for name in names:
            known = self.labels.setdefault(name, {})
            for label in other.labels[name]:
                known.setdefault(label, len(known))
        back = {n: {code: label for label, code in other.labels[n].items()} for n in names}
        for key, s in other.sums.items():
            mine = tuple(self.labels[n][back[n][c]] for n, c in zip(names, key, strict=True))
            self.sums[mine] = self.sums.get(mine, 0) + s

    def marginals(self, part: int) -> dict[str, tuple[dict[str, float], dict[str, float]]]:
        """Per attribute: label -> sum of ``part``, and label -> households (part 0)."""
        names = list(self.labels)
        out = {}
        for i, name in enumerate(names):
            labels = sorted(self.labels[name], key=self.labels[name].get)
            value = dict.fromkeys(labels, 0.0)
            tot = dict.fromkeys(labels, 0.0)
            for key, s in self.sums.items():
                label = labels[key[i]]
                value[label] += float(s[part])
                tot[label] += float(s[0])
            out[name] = (value, tot)
        return out


class _Amounts:
    """The distinct amounts paid and their weights, merged chunk by chunk; coarsened past ``MAX_DISTINCT``
    values so memory stays bounded (the histogram has 20 bars: cents are not needed to draw it)."""

    MAX_DISTINCT = 1 << 20

    def __init__(self) -> None:
        self.values = np.empty(0)
        self.weights = np.empty(0)
        self.step = 1.0  # cents per distinct value kept

    def add(self, cents: np.ndarray, w: np.ndarray) -> None:
        if not len(cents):
            return
        if self.step > 1:
            cents = np.round(cents / self.step) * self.step
        values, inverse = np.unique(np.concatenate([self.values, cents]), return_inverse=True)
        self.weights = np.bincount(inverse, weights=np.concatenate([self.weights, w]), minlength=len(values))
        self.values = values
        self._coarsen()

    def merge(self, other: _Amounts) -> None:
        self.step = max(self.step, other.step)
        self.add(other.values, other.weights)

    def _coarsen(self) -> None:
        while len(self.values) > self.MAX_DISTINCT:
            self.step *= 100
            values, inverse = np.unique(np.round(self.values / self.step) * self.step, return_inverse=True)
            self.weights = np.bincount(inverse, weights=self.weights, minlength=len(values))
            self.values = values


class _Totals:
    """Running sums over chunks; everything a result needs, nothing per row kept."""

    def __init__(
        self, *, detail: bool, declared: Sequence[DeclaredGroup], edges: np.ndarray | None, amount: bool
    ) -> None:
        self.detail = detail
        self.amount = amount  # the protocol pays an amount (else every cent figure is 0: not summed)
        self.declared = list(declared)
        self.edges = edges
        self.cost_cents: int | float = 0
        self.rows = 0
        self.integral = True
        self.eligible_rows = 0
        self._eligible_parts: list[float] = []
        self._weight_parts: list[float] = []
        self.group = _Groups()
        self.declared_group = _Groups()
        self.attribute_names: list[str] = []
        self.sizes_ok = detail
        self.amounts = _Amounts()
        self.size_sums = np.zeros((3, 8))  # households, selected, cost cents
        self.decile_sums = np.zeros((3, 10))
        # baseline
        self.base_cost_cents: int | float = 0
        self.base_eligible_parts: list[float] = []
        self.diff = dict.fromkeys(("newly", "losing", "winners", "losers", "gains", "losses", "change"), 0.0)
        self.decile_diff = np.zeros((7, 10))

    def add(self, ch: Chunk, sel: np.ndarray, cents: np.ndarray) -> np.ndarray | None:
        """Add a chunk's figures; returns its rows' income deciles (None without decile edges)."""
        w, integral = ch.weight, ch.integral
        self.rows += ch.n
        self.integral = self.integral and integral
        self.cost_cents += exact_weighted_sum(cents, w, integral)
        self.eligible_rows += int(np.count_nonzero(sel))
        cw = cents * w if self.amount else None
        sums = self.group.add(ch.attributes, w, sel, cw) if ch.attributes else None
        ws = None
        if sums is not None and integral:  # exact: whole-number sums below 2**53 in any order
            self._weight_parts.append(float(sums[0].sum()))
            self._eligible_parts.append(float(sums[1].sum()))
        else:
            ws = w * sel
            self._weight_parts.append(float(w.sum()))
            self._eligible_parts.append(float(ws.sum()) if integral else math.fsum(ws.tolist()))
        if self.declared:
            coded = {g.name: g.codes(ch.columns[g.name]) for g in self.declared}
            self.declared_group.add({k: v for k, v in coded.items() if v is not None}, w, sel, cw)
        deciles = None
        if self.edges is not None:
            deciles = decile_of(ch.columns[INCOME], self.edges)
        if not self.detail:
            return deciles
        ws = w * sel if ws is None else ws
        cw = cents * w if cw is None else cw
        sizes = ch.columns.get(SIZE)
        if self.sizes_ok and (sizes is None or sizes.dtype.kind not in "iuf" or not np.isfinite(sizes).all()):
            self.sizes_ok = False
        groups = [(deciles, self.decile_sums, 10)]
        if self.sizes_ok:
            groups.append((np.clip(sizes, 1, 8).astype(np.intp) - 1, self.size_sums, 8))
        for idx, sums_, k in groups:
            if idx is None:
                continue
            sums_[0] += np.bincount(idx, weights=w, minlength=k)
            sums_[1] += np.bincount(idx, weights=ws, minlength=k)
            sums_[2] += np.bincount(idx, weights=cw, minlength=k)
        self.amounts.add(cents[sel], w[sel])
        return deciles

    def households(self) -> float:
        return math.fsum(self._weight_parts)

    def merge(self, o: _Totals) -> None:
        """Add a batch's totals (``simulate`` merges batches in order: the partial lists keep that order)."""
        self.cost_cents += o.cost_cents
        self.rows += o.rows
        self.integral = self.integral and o.integral
        self.eligible_rows += o.eligible_rows
        self._eligible_parts += o._eligible_parts
        self._weight_parts += o._weight_parts
        self.group.merge(o.group)
        self.declared_group.merge(o.declared_group)
        self.sizes_ok = self.sizes_ok and o.sizes_ok
        if o.detail:
            self.amounts.merge(o.amounts)
        self.size_sums += o.size_sums
        self.decile_sums += o.decile_sums
        self.base_cost_cents += o.base_cost_cents
        self.base_eligible_parts += o.base_eligible_parts
        for k, v in o.diff.items():
            self.diff[k] += v
        self.decile_diff += o.decile_diff

    def add_baseline(
        self,
        ch: Chunk,
        sel: np.ndarray,
        cents: np.ndarray,
        bsel: np.ndarray,
        bcents: np.ndarray,
        deciles: np.ndarray | None,
    ) -> None:
        w, integral = ch.weight, ch.integral
        self.base_cost_cents += exact_weighted_sum(bcents, w, integral)
        bws = w * bsel
        self.base_eligible_parts.append(float(bws.sum()) if integral else math.fsum(bws.tolist()))
        diff = cents - bcents
        parts = {
            "newly": w * (sel & ~bsel),
            "losing": w * (bsel & ~sel),
            "winners": w * (diff > 0),
            "losers": w * (diff < 0),
            "gains": np.where(diff > 0, diff, 0.0) * w,
            "losses": np.where(diff < 0, -diff, 0.0) * w,
            "change": diff * w,
        }
        for i, (key, arr) in enumerate(parts.items()):
            self.diff[key] += float(arr.sum()) if integral else math.fsum(arr.tolist())
            if deciles is not None:
                self.decile_diff[i] += np.bincount(deciles, weights=arr, minlength=10)

    def eligible(self) -> float:
        return math.fsum(self._eligible_parts)

    def fairness(self, outcome: str, amount: str | None, skipped: Sequence[str] = ()) -> dict[str, Any]:
        """Selection rates (``attributes``) on ``outcome`` and mean amounts (``amount_attributes``) on ``amount``,
        per group of each attribute, each with the lowest-to-highest ratio the four-fifths rule reads; the
        same for the protected inputs the protocol declares (``declared``: shown, never gated)."""
        attributes, amounts = _ratios(self.group, amount)
        declared, declared_amounts = _ratios(self.declared_group, amount)
        by_name = {g.name: g for g in self.declared}
        for name, f in declared.items():
            g = by_name[name]
            f.update(characteristic=g.characteristic, exemption=g.exemption)
            if name in declared_amounts:
                f["amount"] = declared_amounts[name]
        return {
            "attributes": attributes,
            "outcome": outcome,
            "amount": amount,
            "amount_attributes": amounts,
            "declared": declared,
            "declared_skipped": list(skipped),
        }

    def groups(self) -> dict[str, dict[str, dict[str, float]]]:
        """Weighted households and selected households per group (the fairness table's denominators)."""
        return {
            attr: {label: {"households": tot[label], "selected": sel[label]} for label in sel}
            for attr, (sel, tot) in self.group.marginals(1).items()
        }

    def by_size(self) -> list[dict[str, Any]] | None:
        if not self.sizes_ok:
            return None
        labels = [*map(str, range(1, 8)), "8+"]
        s = self.size_sums
        return [
            {"household_size": labels[i], "households": s[0, i], "eligible": s[1, i], "cost": s[2, i] / 100}
            for i in range(8)
            if s[0, i] > 0
        ]

    def by_decile(self) -> list[dict[str, Any]] | None:
        if self.edges is None:
            return None
        edges = self.edges
        s = self.decile_sums
        rows = []
        for i in range(10):
            row: dict[str, Any] = {
                "decile": i + 1,
                "income_from": None if i == 0 else float(edges[i - 1]),
                "income_to": None if i == 9 else float(edges[i]),
            }
            if self.detail:
                row.update(households=s[0, i], eligible=s[1, i], cost=s[2, i] / 100)
            rows.append(row)
        return rows

    def amount_histogram(self) -> dict[str, Any] | None:
        """Weighted distribution of the amounts paid to selected households (dollars)."""
        if not self.detail:
            return None
        amounts, weights = self.amounts.values / 100, self.amounts.weights
        if len(amounts) == 0:
            return {"edges": [], "households": []}
        if len(amounts) <= HISTOGRAM_BINS:  # benefit schedules often pay a few fixed amounts: one bar each
            return {"values": amounts.tolist(), "households": weights.tolist()}
        counts, edges = np.histogram(amounts, bins=HISTOGRAM_BINS, weights=weights)
        return {"edges": edges.tolist(), "households": counts.tolist()}

    def baseline_figures(self, bproto: Protocol, bsha: str | None, boutcome: str, label: str | None) -> dict[str, Any]:
        d = self.diff
        out: dict[str, Any] = {
            "protocol": {"id": bproto.id, "version": bproto.version, "title": bproto.title, "sha256": bsha},
            "label": label,
            "outcome": boutcome,
            "cost_cents": self.base_cost_cents,
            "cost": self.base_cost_cents / 100,
            "cost_delta_cents": self.cost_cents - self.base_cost_cents,
            "cost_delta": (self.cost_cents - self.base_cost_cents) / 100,
            "eligible": math.fsum(self.base_eligible_parts),
            "newly_eligible": d["newly"],
            "losing_eligibility": d["losing"],
            "winners": d["winners"],
            "losers": d["losers"],
            "gains_cents": d["gains"],
            "losses_cents": d["losses"],
            "by_income_decile": None,
        }
        if self.edges is not None:
            dd = self.decile_diff
            hh = self.decile_sums[0] if self.detail else None
            out["by_income_decile"] = [
                {
                    "decile": i + 1,
                    "newly_eligible": dd[0, i],
                    "losing_eligibility": dd[1, i],
                    "winners": dd[2, i],
                    "losers": dd[3, i],
                    "gains": dd[4, i] / 100,
                    "losses": dd[5, i] / 100,
                    "change": dd[6, i] / 100,
                    # the average change per household of the decile (all of them, not only those who move)
                    "average_change": (dd[6, i] / 100 / hh[i]) if hh is not None and hh[i] > 0 else None,
                }
                for i in range(10)
            ]
        return out


def _ratios(groups: _Groups, amount: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(selection-rate figures, mean-amount figures) per attribute of ``groups``."""
    rates_out: dict[str, Any] = {}
    amounts_out: dict[str, Any] = {}
    for attr, (cents, tot) in groups.marginals(2).items():
        means = {g: cents[g] / tot[g] / 100 for g in cents if tot[g] > 0}
        if amount is None or not means:
            continue
        hi = max(means, key=lambda g: means[g])
        lo = min(means, key=lambda g: means[g])
        ratio = 1.0 if means[hi] <= 0 else means[lo] / means[hi]
        amounts_out[attr] = {"means": means, "ratio": ratio, "reference_group": hi, "lowest_group": lo}
    for attr, (sel, tot) in groups.marginals(1).items():
        rates = {g: sel[g] / tot[g] for g in sel if tot[g] > 0}
        if not rates:
            continue
        hi = max(rates, key=lambda g: rates[g])
        lo = min(rates, key=lambda g: rates[g])
        ratio = 1.0 if rates[hi] == 0 else rates[lo] / rates[hi]
        rates_out[attr] = {"rates": rates, "ratio": ratio, "reference_group": hi, "lowest_group": lo}
    return rates_out, amounts_out


__all__ = [
    "SimulationResult",
    "exact_weighted_sum",
    "format_count",
    "format_money",
    "outcome_rule",
    "population_for",
    "simulate",
    "to_cents",
]

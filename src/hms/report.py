"""A self-contained HTML report of a simulation: charts people would rather look at than read.

``render`` writes one file with no external assets and no JavaScript (its stylesheet inlined, its charts
SVG), so it opens from a CI artifact, an e-mail attachment or an air-gapped reviewer's laptop; that is
what ``hms policy simulate --report`` writes. The web app serves the same report with ``assets`` set: the
stylesheet and the theme script come from the app (its CSP allows no inline style or script) and the page
follows Airflow's light or dark theme.

This module only builds typed view data (``ReportView``) from a ``SimulationResult``; the markup is
``templates/report/report.html`` (autoescaped: a protocol title is user input) and the charts are
``hms.charts``, the same module that draws the clerk's cost chart.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from markupsafe import Markup

from hms import __version__, charts, templating
from hms.charts import Chart
from hms.cost_baseline import CostComparison
from hms.simulate import FOUR_FIFTHS, SimulationResult, format_count

STYLESHEET = "base.css"


@dataclass(frozen=True)
class Assets:
    """Where a served report finds the app's stylesheet and theme script (URLs relative to the report)."""

    stylesheet: str
    script: str


@dataclass(frozen=True)
class Figure:
    value: str
    caption: str


@dataclass(frozen=True)
class Panel:
    """A titled chart, or the sentence that says why there is none."""

    title: str
    chart: Chart | None = None
    missing: str | None = None


@dataclass(frozen=True)
class Row:
    cells: tuple[str, ...]
    low: bool = False  # the group with the lowest rate (highlighted)


@dataclass(frozen=True)
class FairnessAttribute:
    name: str
    ratio: str
    ok: bool | None  # None: a mean-amount ratio, shown without a verdict
    chart: Chart | None
    header: tuple[str, ...]
    rows: list[Row]


@dataclass(frozen=True)
class BaselineView:
    heading: str
    sentence: str  # the card's sentence: "prod (v2) costs $X; this costs $Y, +$Z (+N %)"
    movement: str
    chart: Chart | None
    rows: list[Row]
    missing: str | None = None
    average_chart: Chart | None = None  # the average change per household of each decile
    against: str = ""  # "wildfire-aid-2024 v3 (live in prod)"


DECILE_HEADER = ("decile", "newly eligible", "losing", "winners", "losers", "gains", "losses", "avg change")


@dataclass(frozen=True)
class ReportView:
    """Everything the report template shows, already formatted."""

    title: str
    page_title: str
    protocol_id: str
    version: int
    sha12: str | None
    population_source: str
    population_description: str
    badges: list[tuple[str, str]]  # (css class, text)
    figures: list[Figure]
    synthesized: list[tuple[str, str]]
    cost_chart: Chart
    panels: list[list[Panel]]  # rows of two
    baseline: BaselineView | None
    fairness_outcome: str
    fairness: list[FairnessAttribute]
    amount_name: str | None
    amount_period: str
    amount_fairness: list[FairnessAttribute]
    notes: list[str] = field(default_factory=list)
    footer: str = ""
    provenance: str | None = None  # "publisher, year, licence — url": whose data the figures rest on
    declared: list[FairnessAttribute] = field(default_factory=list)  # the protocol's protected inputs
    declared_skipped: list[str] = field(default_factory=list)
    decile_header: tuple[str, ...] = DECILE_HEADER


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def cost_chart(r: SimulationResult) -> Chart:
    """This version's cost (and its baseline's) against the cap: ``hms.charts.cost_chart``."""
    bars = []
    if r.baseline is not None:
        bars.append(
            charts.CostBar(f"baseline v{r.baseline['protocol']['version']}", r.baseline["cost_cents"], charts.GREY)
        )
    bars.append(charts.CostBar(f"v{r.version}", r.cost_cents, charts.cost_fill(r.cost_cents, r.cap_cents)))
    return charts.cost_chart(bars, r.cap_cents, r.currency)


def amounts_missing(r: SimulationResult) -> str | None:
    """Why there is no amount chart, in words that never contradict the eligible count beside it.

    Eligible and paid are different counts: a household can meet the selection rule and still be owed 0
    (e.g. income above the amount's phase-out). The sentence says which case it is, so it never sits
    beside "N households eligible" as a contradiction (issue 18).
    """
    a = r.amounts
    if not a:
        return "The amount breakdown was not computed for this simulation."
    if not a.get("households"):
        if r.eligible > 0:
            return (
                f"{format_count(r.eligible)} households (weighted) meet the selection rule ({r.outcome}), "
                "but the amount rule pays each of them 0: none is paid anything."
            )
        return "No household is eligible, so no household is paid anything."
    return None


def _amounts(r: SimulationResult) -> Panel:
    title = "Amount paid (households, weighted)"
    missing = amounts_missing(r)
    if missing or r.amounts is None:
        return Panel(title, missing=missing)
    a = r.amounts
    if "values" in a:
        labels = [r.money(v * 100) for v in a["values"]]
    else:
        e = a["edges"]
        labels = [charts.money_axis(r.currency)(e[i]) for i in range(len(e) - 1)]
    return Panel(
        title,
        charts.bar_chart(labels, a["households"], fmt=charts.count_axis, x_title="amount", label="amount distribution"),
    )


def _by_size(r: SimulationResult) -> Panel:
    title = "Eligibility by household size"
    rows = r.by_household_size
    if not rows:
        return Panel(title, missing="The population has no household_size column (or the breakdown was not computed).")
    rates = [row["eligible"] / row["households"] if row["households"] else 0 for row in rows]
    return Panel(
        title,
        charts.bar_chart(
            [str(row["household_size"]) for row in rows],
            rates,
            fmt=charts.percent_axis,
            x_title="people in the household",
            label="eligibility by household size",
        ),
    )


_NO_INCOME = "The population has no household_income column (or the breakdown was not computed)."
_DECILES = "weighted income decile (D1 = lowest)"


def _by_decile(r: SimulationResult) -> Panel:
    title = "Eligibility by income decile"
    rows = r.by_income_decile
    if not rows or "households" not in rows[0]:
        return Panel(title, missing=_NO_INCOME)
    rates = [row["eligible"] / row["households"] if row["households"] else 0 for row in rows]
    return Panel(
        title,
        charts.bar_chart(
            [f"D{row['decile']}" for row in rows],
            rates,
            fmt=charts.percent_axis,
            color=charts.VIOLET,
            x_title=_DECILES,
            label="eligibility by income decile",
        ),
    )


def _cost_by_decile(r: SimulationResult, fmt: Callable[[float], str]) -> Panel:
    title = "Cost by income decile"
    rows = r.by_income_decile
    if not rows or "cost" not in rows[0]:
        return Panel(title, missing=_NO_INCOME)
    return Panel(
        title,
        charts.bar_chart(
            [f"D{row['decile']}" for row in rows],
            [row["cost"] for row in rows],
            fmt=fmt,
            color=charts.AMBER,
            x_title=_DECILES,
            label="cost by income decile",
        ),
    )


def baseline_view(r: SimulationResult, fmt: Callable[[float], str]) -> BaselineView | None:
    """Who gains and who loses against the baseline: the report's section, and the clerk's card's."""
    b = r.baseline
    if b is None:
        return None
    label = f" ({b['label']})" if b.get("label") else ""
    against = f"{b['protocol']['id']} v{b['protocol']['version']}{label}"
    heading = f"Against the baseline: {against}"
    sentence = CostComparison(
        r.currency, r.cost_cents, r.cap_cents, b["cost_cents"], b["protocol"]["version"], True, r.per_period
    ).sentence.replace("prod (", "the baseline (", 1)
    movement = (
        f"{format_count(b['newly_eligible'])} households newly eligible, "
        f"{format_count(b['losing_eligibility'])} losing eligibility; "
        f"{format_count(b['winners'])} gain {r.money(b['gains_cents'])} in total, "
        f"{format_count(b['losers'])} lose {r.money(b['losses_cents'])}."
    )
    rows = b.get("by_income_decile")
    if not rows:
        return BaselineView(
            heading, sentence, movement, None, [], "No income column: no breakdown by decile.", against=against
        )
    chart = charts.diverging_chart(
        [f"D{x['decile']}" for x in rows],
        [x["gains"] for x in rows],
        [x["losses"] for x in rows],
        fmt=fmt,
        x_title="winners (gains, green) and losers (losses, red) by income decile",
        label="baseline winners and losers",
    )
    averages = [x.get("average_change") for x in rows]
    average_chart = None
    if all(a is not None for a in averages):
        average_chart = charts.diverging_chart(
            [f"D{x['decile']}" for x in rows],
            [max(a, 0.0) for a in averages],
            [max(-a, 0.0) for a in averages],
            fmt=fmt,
            x_title="average change per household of the decile (every household, not only those who move)",
            label="average change by decile",
        )
    table = [
        Row(
            (
                f"D{x['decile']}",
                format_count(x["newly_eligible"]),
                format_count(x["losing_eligibility"]),
                format_count(x["winners"]),
                format_count(x["losers"]),
                r.money(x["gains"] * 100),
                r.money(x["losses"] * 100),
                "—" if x.get("average_change") is None else r.money(x["average_change"] * 100, sign=True),
            )
        )
        for x in rows
    ]
    return BaselineView(heading, sentence, movement, chart, table, average_chart=average_chart, against=against)


def _fairness(r: SimulationResult, key: str = "attributes") -> list[FairnessAttribute]:
    """One chart and table per attribute; ``declared`` (the protocol's protected inputs) has no verdict."""
    out = []
    for attr, f in r.fairness.get(key, {}).items():
        ok = f["ratio"] >= FOUR_FIFTHS
        labels = list(f["rates"])
        chart = charts.bar_chart(
            labels,
            [f["rates"][g] for g in labels],
            fmt=lambda v: f"{100 * v:.1f} %",
            colors=[charts.RED if g == f["lowest_group"] and not ok else charts.BLUE for g in labels],
            height=200,
            width=1080,
            label=f"selection rate by {attr}",
        )
        top = f["rates"][f["reference_group"]] or 1.0
        rows = []
        for g in labels:
            counts = r.groups.get(attr, {}).get(g, {}) if key == "attributes" else {}
            rows.append(
                Row(
                    (
                        g,
                        format_count(counts.get("households", 0)),
                        format_count(counts.get("selected", 0)),
                        _pct(f["rates"][g]),
                        f"{f['rates'][g] / top:.3f}",
                    ),
                    low=g == f["lowest_group"],
                )
            )
        if key != "attributes":
            rows = [Row((row.cells[0], *row.cells[3:]), low=row.low) for row in rows]
            exempt = f" — exempt: {f['exemption']}" if f.get("exemption") else ""
            out.append(FairnessAttribute(f"{attr} ({f.get('characteristic', attr)}){exempt}", f"{f['ratio']:.3f}",
                                         None, chart, ("group", "rate", "vs highest"), rows))
            continue
        out.append(
            FairnessAttribute(
                attr, f"{f['ratio']:.3f}", ok, chart, ("group", "households", "selected", "rate", "vs highest"), rows
            )
        )
    return out


def provenance_line(pop: dict) -> str | None:
    """``publisher, year, licence — url``: the catalog's provenance of the population, or None."""
    p = pop.get("provenance")
    if not p:
        return None
    text = f"{p['publisher']}, {p['year']}, licence: {p['licence']}"
    return text + (f" — {p['url']}" if p.get("url") else "") + (f" ({p['notes']})" if p.get("notes") else "")


def _amount_fairness(r: SimulationResult) -> list[FairnessAttribute]:
    out = []
    for attr, f in (r.fairness.get("amount_attributes") or {}).items():
        top = f["means"][f["reference_group"]] or 1.0
        rows = [
            Row((g, r.money(100 * mean), f"{mean / top:.3f}"), low=g == f["lowest_group"])
            for g, mean in f["means"].items()
        ]
        out.append(
            FairnessAttribute(attr, f"{f['ratio']:.3f}", None, None, ("group", "mean amount", "vs highest"), rows)
        )
    return out


def view(r: SimulationResult) -> ReportView:
    """The report's view data: every figure formatted, every chart laid out."""
    money_axis = charts.money_axis(r.currency)
    badges = [
        ("bad", "over budget")
        if r.over_budget
        else ("ok", "within budget")
        if r.cap is not None
        else ("warn", "no budget cap")
    ]
    if r.synthesized_columns:
        badges.append(("warn", "synthesized data"))
    pop = r.population
    figures = [
        Figure(r.money(r.cost_cents), f"total cost {r.per_period}"),
        Figure(r.money(r.cap_cents) if r.cap_cents is not None else "—", "budget cap"),
        Figure(_pct(r.share_of_cap) if r.share_of_cap is not None else "—", "of the cap"),
        Figure(format_count(r.eligible), f"households {r.outcome} (weighted)"),
        Figure(f"{pop['rows']:,}", f"rows = {format_count(pop['households'])} households"),
    ]
    if r.baseline is not None:
        figures.append(Figure(r.money(r.baseline["cost_delta_cents"], sign=True), "cost change vs baseline"))
    return ReportView(
        title=r.title,
        page_title=f"Simulation: {r.title} v{r.version}",
        protocol_id=r.protocol_id,
        version=r.version,
        sha12=r.sha256[:12] if r.sha256 else None,
        population_source=str(pop["source"]),
        population_description=str(pop["description"]),
        badges=badges,
        figures=figures,
        synthesized=[(c.name, c.how) for c in r.synthesized_columns],
        cost_chart=cost_chart(r),
        panels=[[_amounts(r), _by_size(r)], [_by_decile(r), _cost_by_decile(r, money_axis)]],
        baseline=baseline_view(r, money_axis),
        fairness_outcome=str(r.fairness.get("outcome") or r.outcome),
        fairness=_fairness(r),
        amount_name=r.fairness.get("amount"),
        amount_period=r.per_period,
        amount_fairness=_amount_fairness(r),
        notes=list(r.notes),
        provenance=provenance_line(pop),
        declared=_fairness(r, "declared"),
        declared_skipped=list(r.fairness.get("declared_skipped") or ()),
        footer=f"hms {__version__} · simulated in {r.seconds:.2f} s · amounts summed in exact integer cents",
    )


def render(r: SimulationResult, *, assets: Assets | None = None) -> str:
    """The report as one HTML string: self-contained (stylesheet inlined, no script) unless ``assets`` says
    where a host serves them."""
    css = None if assets else Markup(templating.static_text(STYLESHEET))  # our own file, not user input
    return templating.render("report/report.html", v=view(r), four_fifths=f"{FOUR_FIFTHS:.0%}", css=css, assets=assets)


def write(result: SimulationResult, path: str | Path) -> Path:
    """Write the self-contained report atomically (a reader never sees half a file)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(render(result))
        os.chmod(tmp, 0o644)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p

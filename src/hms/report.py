"""A self-contained HTML report of a simulation: charts people would rather look at than read.

One file, no external assets and no JavaScript: inline CSS and hand-drawn SVG, so it
opens from a CI artifact, an e-mail attachment or an air-gapped reviewer's laptop.
Every piece of text that comes from a protocol or a population (titles, rule names,
group labels, file names) is HTML-escaped: a protocol title is user input.
"""

from __future__ import annotations

import html
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hms import __version__
from hms.simulate import FOUR_FIFTHS, SimulationResult, format_count, format_money

BLUE, GREEN, RED, GREY, AMBER = "#2563eb", "#16a34a", "#dc2626", "#9ca3af", "#d97706"


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


# ---- SVG charts ----------------------------------------------------------------


def _nice_max(v: float) -> float:
    """A round axis maximum at or above ``v`` whose quarters are round too (1, 2, 4, 6, 8 × 10^k)."""
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 4, 6, 8, 10):
        if m * exp >= v:
            return m * exp
    return 10 * exp


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    fmt: Callable[[float], str],
    color: str = BLUE,
    colors: Sequence[str] | None = None,
    width: int = 560,
    height: int = 260,
    x_title: str = "",
    label: str = "chart",
) -> str:
    """Vertical bars with gridlines, tick labels and a value above each bar."""
    left, right, top, bottom = 64, 12, 22, 46 if x_title else 30
    pw, ph = width - left - right, height - top - bottom
    vmax = _nice_max(max(values, default=0))
    n = max(len(values), 1)
    slot = pw / n
    bw = max(2.0, slot * 0.7)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" aria-label="{esc(label)}">'
    ]
    for i in range(5):
        v = vmax * i / 4
        y = top + ph - ph * i / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{esc(fmt(v))}</text>')
    for i, (lab, v) in enumerate(zip(labels, values, strict=True)):
        h = ph * (v / vmax) if vmax else 0
        x = left + i * slot + (slot - bw) / 2
        y = top + ph - h
        c = colors[i] if colors else color
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{max(h, 0):.1f}" fill="{c}" rx="2">'
            f"<title>{esc(lab)}: {esc(fmt(v))}</title></rect>"
        )
        if n <= 12:
            parts.append(
                f'<text x="{x + bw / 2:.1f}" y="{y - 5:.1f}" class="val" text-anchor="middle">{esc(fmt(v))}</text>'
            )
        if n <= 12 or i % max(1, n // 10) == 0:
            parts.append(
                f'<text x="{x + bw / 2:.1f}" y="{top + ph + 16}" class="tick" text-anchor="middle">{esc(lab)}</text>'
            )
    parts.append(f'<line x1="{left}" y1="{top + ph}" x2="{width - right}" y2="{top + ph}" class="axis"/>')
    if x_title:
        parts.append(
            f'<text x="{left + pw / 2}" y="{height - 6}" class="tick" text-anchor="middle">{esc(x_title)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def diverging_chart(
    labels: Sequence[str],
    ups: Sequence[float],
    downs: Sequence[float],
    *,
    fmt: Callable[[float], str],
    width: int = 560,
    height: int = 280,
    x_title: str = "",
    label: str = "chart",
) -> str:
    """Gains above the axis (green) and losses below it (red), one pair per category."""
    left, right, top, bottom = 64, 12, 16, 46
    pw, ph = width - left - right, height - top - bottom
    vmax = _nice_max(max([*ups, *downs, 0]))
    mid = top + ph / 2
    n = max(len(labels), 1)
    slot = pw / n
    bw = slot * 0.6
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" aria-label="{esc(label)}">'
    ]
    for frac in (-1, -0.5, 0.5, 1):
        y = mid - frac * ph / 2
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" class="grid"/>')
        sign = "−" if frac < 0 else "+"
        tick = sign + esc(fmt(abs(frac) * vmax))
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{tick}</text>')
    for i, lab in enumerate(labels):
        x = left + i * slot + (slot - bw) / 2
        hu = ph / 2 * ups[i] / vmax
        hd = ph / 2 * downs[i] / vmax
        parts.append(
            f'<rect x="{x:.1f}" y="{mid - hu:.1f}" width="{bw:.1f}" height="{hu:.1f}" fill="{GREEN}" rx="2">'
            f"<title>{esc(lab)}: gains {esc(fmt(ups[i]))}</title></rect>"
        )
        parts.append(
            f'<rect x="{x:.1f}" y="{mid:.1f}" width="{bw:.1f}" height="{hd:.1f}" fill="{RED}" rx="2">'
            f"<title>{esc(lab)}: losses {esc(fmt(downs[i]))}</title></rect>"
        )
        parts.append(
            f'<text x="{x + bw / 2:.1f}" y="{top + ph + 16}" class="tick" text-anchor="middle">{esc(lab)}</text>'
        )
    parts.append(f'<line x1="{left}" y1="{mid}" x2="{width - right}" y2="{mid}" class="axis"/>')
    if x_title:
        parts.append(
            f'<text x="{left + pw / 2}" y="{height - 6}" class="tick" text-anchor="middle">{esc(x_title)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def cost_vs_cap(r: SimulationResult, width: int = 1080) -> str:
    """Horizontal bars: this version's cost (and the baseline's) against the cap line."""
    rows: list[tuple[str, float, str]] = []
    if r.baseline is not None:
        rows.append((f"baseline v{r.baseline['protocol']['version']}", r.baseline["cost"], GREY))
    rows.append((f"v{r.version}", r.cost, RED if r.over_budget else GREEN))
    scale = _nice_max(max([c for _, c, _ in rows] + [r.cap or 0]) * 1.05)
    left, right, bar_h, gap, top = 110, 64, 34, 14, 26
    pw = width - left - right
    height = top + len(rows) * (bar_h + gap) + 26
    money = lambda v: format_money(v * 100, r.currency)  # noqa: E731
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" aria-label="cost vs cap">'
    ]
    for i in range(5):
        x = left + pw * i / 4
        parts.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 22}" class="grid"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{height - 6}" class="tick" text-anchor="middle">{esc(money(scale * i / 4))}</text>'
        )
    for j, (lab, cost, color) in enumerate(rows):
        y = top + j * (bar_h + gap)
        w = pw * cost / scale
        parts.append(f'<text x="{left - 8}" y="{y + bar_h / 2 + 5}" class="lab" text-anchor="end">{esc(lab)}</text>')
        parts.append(
            f'<rect x="{left}" y="{y}" width="{max(w, 1):.1f}" height="{bar_h}" fill="{color}" rx="3">'
            f"<title>{esc(lab)}: {esc(money(cost))}</title></rect>"
        )
        inside = w > 170
        tx = left + w - 8 if inside else left + w + 8
        parts.append(
            f'<text x="{tx:.1f}" y="{y + bar_h / 2 + 5}" class="{"barin" if inside else "lab"}" '
            f'text-anchor="{"end" if inside else "start"}">{esc(money(cost))}</text>'
        )
    if r.cap:
        x = left + pw * r.cap / scale
        parts.append(f'<line x1="{x:.1f}" y1="{top - 14}" x2="{x:.1f}" y2="{height - 22}" class="cap"/>')
        parts.append(
            f'<text x="{x - 4:.1f}" y="{top - 16}" class="capl" text-anchor="end">cap {esc(money(r.cap))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


# ---- page ------------------------------------------------------------------------

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f3f4f6;color:#111827}
main{max-width:1140px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:18px;margin:0 0 10px}
.sub{color:#4b5563;margin:0 0 18px}.badge{display:inline-block;padding:4px 12px;border-radius:999px;
font-weight:600;color:#fff}.ok{background:#16a34a}.bad{background:#dc2626}.warn{background:#d97706}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:12px;margin:16px 0}
.card{background:#fff;border-radius:10px;padding:14px 16px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.card b{display:block;font-size:22px}.card span{color:#6b7280;font-size:13px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px}
section{background:#fff;border-radius:10px;padding:16px;margin:16px 0;box-shadow:0 1px 2px rgba(0,0,0,.08)}
svg{width:100%;height:auto}svg .grid{stroke:#e5e7eb}svg .axis{stroke:#6b7280}
svg .tick{font-size:11px;fill:#4b5563}svg .val{font-size:11px;fill:#111827}svg .lab{font-size:13px;fill:#111827}
svg .barin{font-size:13px;fill:#fff;font-weight:600}svg .cap{stroke:#111827;stroke-width:2;stroke-dasharray:6 4}
svg .capl{font-size:12px;fill:#111827;font-weight:600}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e5e7eb}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}tr.low td{background:#fef2f2}
.grid2>div{min-width:0;overflow-x:auto}table.compact th,table.compact td{padding:4px 6px;font-size:13px}
.muted{color:#6b7280}footer{color:#6b7280;font-size:12px;margin:24px 0}code{font-size:13px}
"""


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _money_axis(currency: str) -> Callable[[float], str]:
    def fmt(v: float) -> str:
        sym = "$" if currency == "USD" else f"{currency} "
        for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if abs(v) >= div:
                return f"{sym}{v / div:.3g}{suffix}"
        return f"{sym}{v:,.0f}"

    return fmt


def _count_axis(v: float) -> str:
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:,.0f}"


def _card(value: str, caption: str) -> str:
    return f'<div class="card"><b>{esc(value)}</b><span>{esc(caption)}</span></div>'


def _missing(what: str) -> str:
    return f'<p class="muted">{esc(what)}</p>'


def render(r: SimulationResult) -> str:
    """The report as one HTML string."""
    money_axis = _money_axis(r.currency)
    status = (
        '<span class="badge bad">over budget</span>'
        if r.over_budget
        else '<span class="badge ok">within budget</span>'
        if r.cap is not None
        else '<span class="badge warn">no budget cap</span>'
    )
    if r.synthesized_columns:
        status += ' <span class="badge warn">synthesized data</span>'
    pop = r.population
    cards = [
        _card(r.money(r.cost_cents), f"total cost {r.per_period}"),
        _card(r.money(r.cap_cents) if r.cap_cents is not None else "—", "budget cap"),
        _card(_pct(r.share_of_cap) if r.share_of_cap is not None else "—", "of the cap"),
        _card(format_count(r.eligible), f"households {r.outcome} (weighted)"),
        _card(f"{pop['rows']:,}", f"rows = {format_count(pop['households'])} households"),
    ]
    if r.baseline is not None:
        cards.append(_card(r.money(r.baseline["cost_delta_cents"], sign=True), "cost change vs baseline"))
    body = [
        f"<h1>{esc(r.title)}</h1>",
        f'<p class="sub"><code>{esc(r.protocol_id)}</code> v{r.version}'
        + (f" · bundle <code>{esc(r.sha256[:12])}</code>" if r.sha256 else "")
        + f" · population <b>{esc(pop['source'])}</b> — {esc(pop['description'])} {status}</p>",
        f'<div class="cards">{"".join(cards)}</div>',
        synthesized_columns(r),
        f"<section><h2>Cost against the budget cap</h2>{cost_vs_cap(r)}</section>",
        '<div class="grid2">',
        f"<section><h2>Amount paid (households, weighted)</h2>{_amounts(r)}</section>",
        f"<section><h2>Eligibility by household size</h2>{_by_size(r)}</section>",
        "</div>",
        '<div class="grid2">',
        f"<section><h2>Eligibility by income decile</h2>{_by_decile(r)}</section>",
        f"<section><h2>Cost by income decile</h2>{_cost_by_decile(r, money_axis)}</section>",
        "</div>",
    ]
    if r.baseline is not None:
        body.append(_baseline(r, money_axis))
    body.append(_fairness(r))
    if r.notes:
        body.append("<section><h2>Notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in r.notes) + "</ul></section>")
    body.append(
        f"<footer>hms {esc(__version__)} · simulated in {r.seconds:.2f} s · amounts summed in exact integer cents"
        "</footer>"
    )
    title = f"Simulation: {r.title} v{r.version}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        + "\n".join(body)
        + "</main></body></html>\n"
    )


def synthesized_columns(r: SimulationResult) -> str:
    """The columns the population lacked and how each was drawn ('' when none): invented data says so."""
    if not r.synthesized_columns:
        return ""
    rows = "".join(f"<tr><td><code>{esc(c.name)}</code></td><td>{esc(c.how)}</td></tr>" for c in r.synthesized_columns)
    return (
        '<section class="synthesized"><h2>Synthesized columns</h2>'
        "<p>The population has no such columns: they were drawn from the protocol's declared inputs, so every "
        "figure in this report rests on invented values for them, not on observed households.</p>"
        f"<table><tr><th>column</th><th>how it was drawn</th></tr>{rows}</table></section>"
    )


def _amounts(r: SimulationResult) -> str:
    a = r.amounts
    # Eligible and paid are different counts: a household can meet the selection rule and still be owed 0
    # (e.g. income above the amount's phase-out). The sentence says which case it is, so it never sits
    # beside "N households eligible" as a contradiction.
    if not a:
        return _missing("The amount breakdown was not computed for this simulation.")
    if not a.get("households"):
        if r.eligible > 0:
            return _missing(f"{format_count(r.eligible)} households (weighted) meet the selection rule "
                            f"({r.outcome}), but the amount rule pays each of them 0: none is paid anything.")
        return _missing("No household is eligible, so no household is paid anything.")
    money = lambda v: format_money(v * 100, r.currency)  # noqa: E731
    if "values" in a:
        labels = [money(v) for v in a["values"]]
    else:
        e = a["edges"]
        labels = [_money_axis(r.currency)(e[i]) for i in range(len(e) - 1)]
    return bar_chart(
        labels, a["households"], fmt=_count_axis, color=BLUE, x_title="amount", label="amount distribution"
    )


def _by_size(r: SimulationResult) -> str:
    rows = r.by_household_size
    if not rows:
        return _missing("The population has no household_size column (or the breakdown was not computed).")
    rates = [row["eligible"] / row["households"] if row["households"] else 0 for row in rows]
    return bar_chart(
        [row["household_size"] for row in rows],
        rates,
        fmt=lambda v: f"{100 * v:.0f} %",
        color=BLUE,
        x_title="people in the household",
        label="eligibility by household size",
    )


def _by_decile(r: SimulationResult) -> str:
    rows = r.by_income_decile
    if not rows or "households" not in rows[0]:
        return _missing("The population has no household_income column (or the breakdown was not computed).")
    rates = [row["eligible"] / row["households"] if row["households"] else 0 for row in rows]
    return bar_chart(
        [f"D{row['decile']}" for row in rows],
        rates,
        fmt=lambda v: f"{100 * v:.0f} %",
        color="#7c3aed",
        x_title="weighted income decile (D1 = lowest)",
        label="eligibility by income decile",
    )


def _cost_by_decile(r: SimulationResult, fmt: Callable[[float], str]) -> str:
    rows = r.by_income_decile
    if not rows or "cost" not in rows[0]:
        return _missing("The population has no household_income column (or the breakdown was not computed).")
    return bar_chart(
        [f"D{row['decile']}" for row in rows],
        [row["cost"] for row in rows],
        fmt=fmt,
        color=AMBER,
        x_title="weighted income decile (D1 = lowest)",
        label="cost by income decile",
    )


def _baseline(r: SimulationResult, fmt: Callable[[float], str]) -> str:
    b = r.baseline
    assert b is not None
    head = (
        f"<h2>Against the baseline: {esc(b['protocol']['id'])} v{b['protocol']['version']}"
        + (f" ({esc(b['label'])})" if b.get("label") else "")
        + "</h2>"
        f"<p>Cost {esc(r.money(b['cost_cents']))} → {esc(r.money(r.cost_cents))} "
        f"(<b>{esc(r.money(b['cost_delta_cents'], sign=True))}</b>). "
        f"{esc(format_count(b['newly_eligible']))} households newly eligible, "
        f"{esc(format_count(b['losing_eligibility']))} losing eligibility; "
        f"{esc(format_count(b['winners']))} gain {esc(r.money(b['gains_cents']))} in total, "
        f"{esc(format_count(b['losers']))} lose {esc(r.money(b['losses_cents']))}.</p>"
    )
    rows = b.get("by_income_decile")
    if not rows:
        return f"<section>{head}{_missing('No income column: no breakdown by decile.')}</section>"
    chart = diverging_chart(
        [f"D{x['decile']}" for x in rows],
        [x["gains"] for x in rows],
        [x["losses"] for x in rows],
        fmt=fmt,
        x_title="winners (gains, green) and losers (losses, red) by income decile",
        label="baseline winners and losers",
    )
    table = ['<table class="compact"><tr><th>decile</th>'] + [
        f'<th class="n">{h}</th>' for h in ("newly eligible", "losing", "winners", "losers", "gains", "losses")
    ]
    table.append("</tr>")
    for x in rows:
        cells = [
            format_count(x["newly_eligible"]),
            format_count(x["losing_eligibility"]),
            format_count(x["winners"]),
            format_count(x["losers"]),
            r.money(x["gains"] * 100),
            r.money(x["losses"] * 100),
        ]
        table.append(f"<tr><td>D{x['decile']}</td>" + "".join(f'<td class="n">{esc(c)}</td>' for c in cells) + "</tr>")
    table.append("</table>")
    return f'<section>{head}<div class="grid2"><div>{chart}</div><div>{"".join(table)}</div></div></section>'


def _fairness(r: SimulationResult) -> str:
    attrs = r.fairness.get("attributes", {})
    if not attrs:
        return "<section><h2>Fairness</h2>" + _missing("The population has no demographic columns.") + "</section>"
    out = [
        "<section><h2>Fairness: selection rate by group</h2>",
        f"<p>Outcome <code>{esc(r.fairness['outcome'])}</code>. The four-fifths rule flags an attribute whose lowest "
        f"selection rate is under {FOUR_FIFTHS:.0%} of the highest.</p>",
    ]
    for attr, f in attrs.items():
        ok = f["ratio"] >= FOUR_FIFTHS
        badge = f'<span class="badge {"ok" if ok else "bad"}">ratio {f["ratio"]:.3f}</span>'
        out.append(f"<h3>{esc(attr)} {badge}</h3>")
        labels = list(f["rates"])
        out.append(
            bar_chart(
                labels,
                [f["rates"][g] for g in labels],
                fmt=lambda v: f"{100 * v:.1f} %",
                colors=[RED if g == f["lowest_group"] and not ok else BLUE for g in labels],
                height=200,
                width=1080,
                label=f"selection rate by {attr}",
            )
        )
        out.append(
            '<table><tr><th>group</th><th class="n">households</th><th class="n">selected</th>'
            '<th class="n">rate</th><th class="n">vs highest</th></tr>'
        )
        top = f["rates"][f["reference_group"]] or 1.0
        for g in labels:
            counts = r.groups.get(attr, {}).get(g, {})
            low = ' class="low"' if g == f["lowest_group"] else ""
            out.append(
                f"<tr{low}><td>{esc(g)}</td>"
                f'<td class="n">{esc(format_count(counts.get("households", 0)))}</td>'
                f'<td class="n">{esc(format_count(counts.get("selected", 0)))}</td>'
                f'<td class="n">{esc(_pct(f["rates"][g]))}</td>'
                f'<td class="n">{f["rates"][g] / top:.3f}</td></tr>'
            )
        out.append("</table>")
    amounts = r.fairness.get("amount_attributes") or {}
    if amounts:
        out.append(
            f"<h2>Mean amount per household by group</h2><p>Amount <code>{esc(r.fairness.get('amount') or '')}"
            f"</code>, {esc(r.per_period)}, over every household of the group (those not selected count as 0).</p>"
        )
    for attr, f in amounts.items():
        out.append(f'<h3>{esc(attr)} <span class="badge">ratio {f["ratio"]:.3f}</span></h3>')
        out.append('<table><tr><th>group</th><th class="n">mean amount</th><th class="n">vs highest</th></tr>')
        top = f["means"][f["reference_group"]] or 1.0
        for g, mean in f["means"].items():
            low = ' class="low"' if g == f["lowest_group"] else ""
            out.append(
                f'<tr{low}><td>{esc(g)}</td><td class="n">{esc(r.money(100 * mean))}</td>'
                f'<td class="n">{mean / top:.3f}</td></tr>'
            )
        out.append("</table>")
    out.append("</section>")
    return "".join(out)


def write(result: SimulationResult, path: str | Path) -> Path:
    """Write the report atomically (a reader never sees half a file)."""
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

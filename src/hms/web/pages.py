"""The clerk page ("Reviews"), the ops view ("Deploys") and the error page: typed view data for templates.

The markup is ``templates/web/`` (Jinja2, autoescaped: a ``<script>`` typed into a comment or a protocol
title stays text), the look ``static/base.css`` + ``web/static/hms.css`` and the only script
``web/static/hms.js``, served by the app (its CSP forbids inline and foreign scripts and styles). This
module turns the read models of ``hms.web.reviews`` into what a card shows, in the order a clerk reads it:
what changed (in plain words, against prod and against the previous version), what it costs against prod,
then approvals, checks, and the raw YAML diff only on request.

Every time is a ``Moment``: shown in the pipeline's zone with the zone named, its UTC form on hover
(``<time datetime=… title="… UTC">``) — also the times inside sentences the core wrote for the pages.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from hms import charts, clock, report, templating
from hms.charts import Chart
from hms.cost_baseline import CostComparison
from hms.pipeline_config import PipelineConfig
from hms.protocol_diff import SECTION_ORDER, Change, show
from hms.replay import ReplayResult
from hms.report import BaselineView
from hms.simulate import SimulationResult, format_money
from hms.web.bundle_life import RunLinks
from hms.web.reviews import SCHEDULER_ROLE, BundleView, Caller

UTC_ZONE = ZoneInfo("UTC")
PAGE_NAMES = {"reviews": "Reviews", "ops": "Deploys"}  # the sidebar entry, the <title> and the <h1> alike


# ---- times ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Moment:
    """An instant as the pages show it: ``local`` in the pipeline's zone (named), ``utc`` on hover."""

    iso: str
    local: str
    utc: str


def moment(t: datetime | str | None, tz: ZoneInfo) -> Moment | None:
    if t is None:
        return None
    dt = datetime.fromisoformat(t) if isinstance(t, str) else t
    return Moment(
        dt.astimezone(UTC).isoformat(),
        dt.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z"),
        dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


# How hms.effective_time.local writes an instant into a sentence: wall time in the pipeline's zone + its
# abbreviation (which says, in the autumn fold, which of the two wall times it was).
_LOCAL_TIME = re.compile(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}(?::\d{2})?) ([A-Z][A-Za-z0-9+-]{0,5})")


UTC_ZONE = ZoneInfo("UTC")
_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})")


def instants(text: str, tz: ZoneInfo) -> list[str | Moment]:
    """A message of the core's, which states instants in ISO 8601 (UTC), with each instant as a ``Moment`` in
    ``tz`` — what the pages' script does to the API's refusals (hms.js, hmsTimedText), done on the server."""
    out: list[str | Moment] = []
    last = 0
    for m in _INSTANT.finditer(text):
        try:
            at = datetime.fromisoformat(m.group(0).replace("Z", "+00:00"))
        except ValueError:
            continue
        out += [text[last : m.start()], moment(at, tz)]  # type: ignore[list-item]
        last = m.end()
    out.append(text[last:])
    return [p for p in out if p != ""]


def timed(text: str | None, tz: ZoneInfo) -> list[str | Moment]:
    """A sentence of the core's (a late-activation note) split into text and ``Moment`` s, so its times get
    the same hover as every other time on the page."""
    if not text:
        return []
    out: list[str | Moment] = []
    last = 0
    for m in _LOCAL_TIME.finditer(text):
        wall = datetime.fromisoformat(m.group(1))
        at = next((c for c in (wall.replace(tzinfo=tz, fold=f) for f in (0, 1)) if c.tzname() == m.group(2)), None)
        if at is None:
            continue
        out += [text[last : m.start()], moment(at, tz)]  # type: ignore[list-item]
        last = m.end()
    out.append(text[last:])
    return [p for p in out if p != ""]


# ---- the card -----------------------------------------------------------------------------------

SECTION_LABELS = {
    "parameters": "Parameters",
    "rules": "Rules",
    "inputs": "Inputs",
    "tests": "Tests",
    "other": "Everything else",
}


@dataclass(frozen=True)
class ChangeLine:
    """One change in plain words: ``what`` changed from ``old`` to ``new`` (both None: ``text`` says it)."""

    kind: str
    what: str
    old: str | Moment | None = None  # a Moment for a time (metadata.effective_at), shown like every other time
    new: str | Moment | None = None
    text: str = ""


@dataclass(frozen=True)
class ChangeGroup:
    section: str
    label: str
    lines: list[ChangeLine]


@dataclass(frozen=True)
class ChangeList:
    """The changes against one other version (prod's, or the previous one), grouped parameters first."""

    key: str  # prod | previous
    heading: str  # "Against prod (v2)"
    groups: list[ChangeGroup]
    empty: str | None = None  # why there is no list (identical, nothing to compare with, the same as prod's)

    @property
    def count(self) -> int:
        return sum(len(g.lines) for g in self.groups)


def _short(path: str, section: str) -> str:
    return path.removeprefix(f"{section}.")


#: Changes whose values are instants: shown in the pipeline's zone, not as the file's ISO text.
TIME_PATHS = frozenset({"metadata.effective_at"})


def _value(c: Change, v: object, tz: ZoneInfo) -> str | Moment:
    if c.path in TIME_PATHS and isinstance(v, str):
        with contextlib.suppress(ValueError):
            m = moment(v, tz)
            if m is not None:
                return m
    return show(v)


def change_line(c: Change, tz: ZoneInfo) -> ChangeLine:
    """A ``hms.protocol_diff.Change`` as a clerk reads it: old → new where there is one of each."""
    where = _short(c.path, c.section)
    arrow = {
        "changed": where,
        "formula": f"rule {c.path}",
        "dated_changed": f"{where} from {c.date}",
        "entry_changed": f"{where}[{c.key}]",
        "expect_changed": f"test case {c.key!r} expects",
        "case_changed": f"test case {c.key!r}: {_short(c.path, 'tests')}",
    }
    if c.kind in arrow:
        return ChangeLine(c.kind, arrow[c.kind], _value(c, c.old, tz), _value(c, c.new, tz))
    return ChangeLine(c.kind, where, text=c.sentence.removeprefix(f"{c.section}."))


def change_list(key: str, heading: str, changes: list[Change], empty: str, tz: ZoneInfo = UTC_ZONE) -> ChangeList:
    """The changes grouped by section in review order (parameters, rules, inputs, tests, everything else)."""
    groups = []
    for section in SECTION_ORDER:
        lines = [change_line(c, tz) for c in changes if c.section == section]
        if lines:
            groups.append(ChangeGroup(section, SECTION_LABELS[section], lines))
    return ChangeList(key, heading, groups, None if groups else empty)


def changes_vs_prod(v: BundleView, tz: ZoneInfo = UTC_ZONE) -> ChangeList:
    if v.live_version is None:
        return change_list(
            "prod", "Against prod", [], "Nothing is in force in prod yet: this is the first version to go there."
        )
    if not v.diff:
        return change_list("prod", f"Against prod (v{v.live_version})", [], "Prod serves this very bundle.")
    return change_list(
        "prod",
        f"Against prod (v{v.live_version})",
        v.changes_vs_prod,
        "No change a clerk reviews: the documents differ only in form.",
        tz,
    )


def changes_vs_previous(v: BundleView, tz: ZoneInfo = UTC_ZONE) -> ChangeList:
    if v.previous_version is None:
        return change_list("previous", "Against the previous version", [], "This is the protocol's first version.")
    heading = f"Against the previous version (v{v.previous_version})"
    if v.previous_version == v.live_version:
        return change_list(
            "previous", heading, [], f"v{v.previous_version} is the version in prod: the same changes as against prod."
        )
    return change_list(
        "previous", heading, v.changes_vs_previous, "No change a clerk reviews: the documents differ only in form.", tz
    )


@dataclass(frozen=True)
class CostView:
    """``prod (v2) costs $X; this costs $Y, +$Z (+N %)`` and the chart of both against the cap."""

    sentence: str
    two_runs: bool  # the figures come from two simulations (possibly two populations)
    chart: Chart


def cost_view(c: CostComparison, version: int) -> CostView:
    bars = []
    if c.baseline_cents is not None:
        label = f"prod v{c.baseline_version}" if c.baseline_version is not None else "prod"
        bars.append(charts.CostBar(label, c.baseline_cents, charts.GREY))
    bars.append(charts.CostBar(f"v{version}", c.cost_cents, charts.cost_fill(c.cost_cents, c.cap_cents)))
    return CostView(
        c.sentence, c.baseline_cents is not None and not c.same_run, charts.cost_chart(bars, c.cap_cents, c.currency)
    )


@dataclass(frozen=True)
class TestsView:
    ok: bool
    passed: int
    total: int
    failing: list[tuple[str, str]]


@dataclass(frozen=True)
class Finding:
    rule_set: str
    path: str
    message: str


@dataclass(frozen=True)
class ScanView:
    ok: bool
    counts: str  # privacy(0) ethics(0) legal(0)
    findings: list[Finding]
    warnings: list[Finding]


@dataclass(frozen=True)
class SimulationView:
    """The recorded simulation: ``error`` when it failed to run, else its cost line and the report link."""

    ok: bool
    cost: str = ""
    share: str = ""
    source: str = ""
    error: str | None = None
    report_href: str = ""
    synthesized: list[tuple[str, str]] = field(default_factory=list)
    distribution: BaselineView | None = None  # winners and losers against the baseline the run simulated
    provenance: str | None = None


@dataclass(frozen=True)
class ReplayView:
    """The recorded replay (hms.replay) beside the simulation: what the bundle would have done to real decisions."""

    ok: bool
    at: Moment | None
    headline: list[str | Moment]  # "12 of 1,000 replayed prod's decisions since <time> would change"
    lines: list[str]  # eligibility flips, amounts up and down, each with example decision ids
    failures: list[tuple[str, str]]  # (decision id, why) where the candidate's rules fail on a logged input
    unreplayable: list[str]  # "candidate reads household_income, which the log keeps only as a keyed hash: …"


@dataclass(frozen=True)
class EnvChip:
    name: str
    state: str  # live | pending | rolled_back | cancelled | superseded | absent
    at: Moment | None  # since (live), at (pending), when it ended (the others)
    note: list[str | Moment]


@dataclass(frozen=True)
class DecisionForm:
    state: str  # open | decided | no-role
    roles: list[str]


@dataclass(frozen=True)
class LifeLine:
    """One event of the bundle's life (hms.web.bundle_life) as the card shows it, with its links when the host
    knows where a run and its step's log are (``RunLinks``: Airflow's grid and task log)."""

    at: Moment | None
    kind: str
    sentence: list[str | Moment]
    ok: bool | None
    run_id: str | None
    run_href: str | None
    log_href: str | None


def life_lines(v: BundleView, tz: ZoneInfo, links: RunLinks | None) -> list[LifeLine]:
    pid = v.bundle.protocol.id
    out = []
    for e in v.life:
        run = links.run(pid, e.run_id) if links and e.run_id else None
        log = links.step(pid, e.run_id, e.stage, e.environment) if links and e.run_id and e.stage else None
        out.append(LifeLine(moment(e.at, tz), e.kind, timed(e.sentence, tz), e.ok, e.run_id, run, log))
    return out


@dataclass(frozen=True)
class CardView:
    """One bundle's card; ``waiting`` cards carry the decision form, decided ones where the bundle is now."""

    sha256: str
    state: str
    title: str
    protocol_id: str
    version: int
    author: str
    authority: str
    effective: Moment | None
    late: str | None
    vs_prod: ChangeList
    vs_previous: ChangeList
    cost: CostView | None
    reviews: list[tuple[str, str, str, str]]  # user, role, decision, comment
    summary: str
    tests: TestsView | None
    scan: ScanView | None
    simulation: SimulationView | None
    replay: ReplayView | None
    raw_diff: list[tuple[str, str]]  # (css class, line)
    prod_label: str
    environments: list[EnvChip]
    form: DecisionForm
    life: list[LifeLine]
    waiting_since: Moment | None  # when its review began (its checks passed)
    review_deadline: Moment | None  # when the run stops waiting for it
    run_stopped: LifeLine | None  # its newest run's abort, before any decision: nobody waits for this review


def _late(v: BundleView) -> str | None:
    """A protocol approved after its effective date: say plainly it will not apply to the time before."""
    if v.bundle.protocol.effective_at > clock.now():
        return None
    live = any(e["state"] == "live" and e.get("note") for e in v.environments)
    return (
        "effective date passed; in force from when it goes live in prod; not retroactive"
        if not live
        else "effective date passed; not retroactive"
    )


def _tests(v: BundleView) -> TestsView | None:
    test = v.checks.get("test")
    if test is None:
        return None
    t = test.summary
    total = int(t.get("total", 0))
    failing = [(str(c.get("name")), str(c.get("mismatches"))) for c in t.get("cases", []) if not c.get("ok")]
    return TestsView(bool(test.ok), total - int(t.get("failed", 0)), total, failing)


def _scan(v: BundleView) -> ScanView | None:
    scan = v.checks.get("scan")
    if scan is None:
        return None
    sc = scan.summary
    counts_by_set = sc.get("counts") or {}
    order = sc.get("rule_sets") or sorted(counts_by_set)  # the registry keeps JSON with sorted keys

    def findings(key: str) -> list[Finding]:
        return [Finding(str(f.get("rule_set")), str(f.get("path")), str(f.get("message"))) for f in sc.get(key) or []]

    return ScanView(
        bool(scan.ok),
        " ".join(f"{k}({counts_by_set.get(k, 0)})" for k in order),
        findings("findings"),
        findings("warnings"),
    )


def _simulation(v: BundleView) -> SimulationView | None:
    test = v.checks.get("test")
    sim = test.summary.get("simulation") if test else None
    if not sim:
        return None
    if "protocol" not in sim:
        return SimulationView(False, error=f"{sim.get('where')}: {sim.get('error')}")
    r = SimulationResult.from_dict(sim)
    share = f" ({100 * r.share_of_cap:.1f} % of the cap)" if r.share_of_cap is not None else ""
    return SimulationView(
        r.ok,
        r.money(r.cost_cents),
        share,
        str(r.population.get("source")),
        report_href=f"reports/{v.bundle.sha256}",
        synthesized=[(c.name, c.how) for c in r.synthesized_columns],
        distribution=report.baseline_view(r, charts.money_axis(r.currency)),
        provenance=report.provenance_line(r.population),
    )


def _replay(v: BundleView, tz: ZoneInfo) -> ReplayView | None:
    check = v.checks.get("replay")
    if check is None:
        return None
    r = ReplayResult.from_dict(check.summary)
    currency = str((v.bundle.protocol.budget or {}).get("currency", "USD"))

    def money(x: float) -> str:
        return format_money(x * 100, currency)

    def ids(kind: str) -> str:
        shown = r.examples.get(kind) or []
        return f" (e.g. {', '.join(shown)})" if shown else ""

    where = f"{r.environment}'s decisions since {r.since}"
    if not r.logged:
        headline = f"no decisions logged in {where}: nothing to compare"
    else:
        headline = f"{r.changed:,} of {r.replayed:,} replayed {where} would change ({r.logged:,} logged)"
    lines = []
    if r.logged and r.eligible_rule:
        lines.append(f"{r.to_ineligible:,} eligible → not eligible{ids('to_ineligible')}")
        lines.append(f"{r.to_eligible:,} not eligible → eligible{ids('to_eligible')}")
    if r.logged and r.amount_rule:
        lines.append(f"{r.amount_up:,} {r.amount_rule} up, {money(r.amount_up_total)} in all, at most "
                     f"{money(r.amount_up_max)}{ids('amount_up')}")
        lines.append(f"{r.amount_down:,} {r.amount_rule} down, {money(r.amount_down_total)} in all, at most "
                     f"{money(r.amount_down_max)}{ids('amount_down')}")
    return ReplayView(r.ok, moment(check.at, tz), instants(headline, tz), lines, [tuple(f) for f in r.failures],  # type: ignore[misc]
                      [u.sentence() for u in r.unreplayable])


def _raw_diff(v: BundleView) -> list[tuple[str, str]]:
    cls = {"+": "add", "-": "del", "@": "hunk"}
    return [("" if line.startswith(("+++", "---")) else cls.get(line[:1], ""), line) for line in v.diff]


def _form(v: BundleView, caller: Caller) -> DecisionForm:
    if caller.user in {r.user for r in v.reviews}:
        return DecisionForm("decided", [])
    if not v.roles_for_caller:
        return DecisionForm("no-role", [])
    return DecisionForm("open", list(v.roles_for_caller))


def card(v: BundleView, caller: Caller, tz: ZoneInfo, links: RunLinks | None = None) -> CardView:
    b, p = v.bundle, v.bundle.protocol
    envs = [
        EnvChip(
            e["environment"],
            e["state"],
            moment(e.get("activate_at") or e.get("since") or e.get("ended_at"), tz),
            timed(e.get("note"), tz),
        )
        for e in v.environments
    ]
    return CardView(
        sha256=b.sha256,
        state=v.state,
        title=p.title,
        protocol_id=p.id,
        version=p.version,
        author=p.author,
        authority=p.authority or "—",
        effective=moment(p.data["metadata"]["effective_at"], tz),
        late=_late(v),
        vs_prod=changes_vs_prod(v, tz),
        vs_previous=changes_vs_previous(v, tz),
        cost=cost_view(v.cost, p.version) if v.cost else None,
        reviews=[(r.user, r.role, r.decision, r.comment) for r in v.reviews],
        summary=v.status.summary(),
        tests=_tests(v),
        scan=_scan(v),
        simulation=_simulation(v),
        replay=_replay(v, tz),
        raw_diff=_raw_diff(v),
        prod_label=f"v{v.live_version}" if v.live_version is not None else "nothing (first version)",
        environments=envs,
        form=_form(v, caller),
        life=(life := life_lines(v, tz, links)),
        waiting_since=moment(v.waiting_since, tz),
        review_deadline=moment(v.review_deadline, tz),
        run_stopped=next((ln for ln, e in zip(life, v.life, strict=True) if e is v.run_stopped), None),
    )


# ---- pages --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageView:
    """What every page has: its one name, who is signed in, and the pipeline's zone (for hms.js)."""

    key: str
    name: str
    timezone: str
    user: str | None = None
    roles: str = ""
    base: str = ""  # the relative path to the app's root ("../" for a page one level down, e.g. an error there)

    @property
    def nav(self) -> list[tuple[str, str, str]]:
        return [(k, f"{self.base}{k}", n) for k, n in PAGE_NAMES.items()]


def _page(key: str, caller: Caller | None, config: PipelineConfig | None) -> PageView:
    return PageView(
        key,
        PAGE_NAMES.get(key, key),
        config.timezone if config else "UTC",
        caller.user if caller else None,
        (", ".join(caller.roles) or "no pipeline role") if caller else "",
    )


def reviews_page(
    waiting: list[BundleView],
    decided: list[BundleView],
    caller: Caller,
    config: PipelineConfig,
    links: RunLinks | None = None,
) -> str:
    tz = config.tz
    return templating.render(
        "web/reviews.html",
        page=_page("reviews", caller, config),
        waiting=[card(v, caller, tz, links) for v in waiting],
        decided=[card(v, caller, tz, links) for v in decided],
    )


def error_page(
    status: int, message: str, field: str | None, login_url: str | None, *, base: str = "",
    tz: ZoneInfo = UTC_ZONE,
) -> str:
    return templating.render(
        "web/error.html",
        page=PageView("error", str(status), tz.key, base=base),
        status=status,
        message=instants(message, tz),
        field=field,
        login_url=login_url if status == 401 else None,
    )


# ---- ops view -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    version: int
    sha256: str
    at: Moment | None
    note: list[str | Moment]


@dataclass(frozen=True)
class MoveLine:
    """A scheduler's move as one line: from → to, who and why."""

    moved_from: Moment | None
    moved_to: Moment | None
    by: str
    reason: str | None


@dataclass(frozen=True)
class HistoryRow:
    environment: str
    version: int
    state: str  # as shown: a row a move ended reads "moved"
    move: MoveLine | None
    note: list[str | Moment]
    activate_at: Moment | None
    ended_at: Moment | None
    created_by: str
    run_id: str
    run_href: str | None = None  # the run in the host's UI (RunLinks), when the host says where
    log_href: str | None = None  # the log of the step that made this row (deploy, or the last one's schedule)


@dataclass(frozen=True)
class EnvRow:
    environment: str
    live: Served | None
    pending: list[Served]


@dataclass(frozen=True)
class ProtocolOps:
    protocol_id: str
    environments: list[EnvRow]
    history: list[HistoryRow]


def _served(d: dict[str, Any], at_key: str, tz: ZoneInfo) -> Served:
    return Served(d["version"], d["sha256"], moment(d[at_key], tz), timed(d.get("note"), tz))


def _history(h: dict[str, Any], tz: ZoneInfo, pid: str, links: RunLinks | None) -> HistoryRow:
    m = h.get("move")
    run = h["run_id"] or ""
    move = MoveLine(moment(m["moved_from"], tz), moment(m["moved_to"], tz), m["by"], m["reason"]) if m else None
    return HistoryRow(
        h["environment"],
        h["version"],
        "moved" if m and h["state"] == "cancelled" else h["state"],
        move,
        timed(h.get("note"), tz),
        moment(h["activate_at"], tz),
        moment(h["ended_at"], tz),
        h["created_by"],
        run,
        links.run(pid, run) if links and run else None,
        links.step(pid, run, "deploy", h["environment"]) if links and run else None,
    )


def ops_view(overview: list[dict[str, Any]], tz: ZoneInfo, links: RunLinks | None = None) -> list[ProtocolOps]:
    return [
        ProtocolOps(
            p["protocol_id"],
            [
                EnvRow(
                    e["environment"],
                    _served(e["live"], "since", tz) if e["live"] else None,
                    [_served(d, "activate_at", tz) for d in e["pending"]],
                )
                for e in p["environments"]
            ],
            [_history(h, tz, p["protocol_id"], links) for h in p["history"]],
        )
        for p in overview
    ]


def ops_page(
    overview: list[dict[str, Any]], caller: Caller, config: PipelineConfig, links: RunLinks | None = None
) -> str:
    return templating.render(
        "web/ops.html",
        page=_page("ops", caller, config),
        protocols=ops_view(overview, config.tz, links),
        can_move=SCHEDULER_ROLE in caller.roles,
    )


# ---- static files (served by hms.web.app; the CSP allows no inline script or style) ---------------

#: name → (package, path in it, media type)
STATIC: dict[str, tuple[str, str, str]] = {
    "base.css": ("hms", "static/base.css", "text/css"),
    "hms.css": ("hms.web", "static/hms.css", "text/css"),
    "hms.js": ("hms.web", "static/hms.js", "text/javascript"),
    "reviews.svg": ("hms.web", "static/reviews.svg", "image/svg+xml"),
    "reviews-dark.svg": ("hms.web", "static/reviews-dark.svg", "image/svg+xml"),
    "deploys.svg": ("hms.web", "static/deploys.svg", "image/svg+xml"),
    "deploys-dark.svg": ("hms.web", "static/deploys-dark.svg", "image/svg+xml"),
}

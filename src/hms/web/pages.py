"""HTML of the clerk page and the ops view: server-rendered, escaped, no external assets.

Every value that comes from a protocol, a comment or a user name goes through ``esc`` (the report's
escaper); the only script is ``static/hms.js`` from this app (the pages send a Content-Security-Policy
that forbids inline and foreign scripts), so a ``<script>`` typed into a comment stays text. Charts are
the simulation report's own SVG (hms.report), drawn from the result the test step recorded.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from hms import clock, report
from hms.pipeline_config import PipelineConfig
from hms.web.reviews import SCHEDULER_ROLE, BundleView, Caller

if TYPE_CHECKING:
    from hms.simulate import SimulationResult

esc = report.esc

CSS = report.CSS + """
nav.top{display:flex;gap:16px;align-items:center;margin-bottom:12px}nav.top a{color:#2563eb;text-decoration:none}
nav.top .me{margin-left:auto;color:#4b5563}pre.diff{background:#0f172a;color:#e2e8f0;padding:10px;border-radius:8px;
overflow-x:auto;font-size:12px;max-height:420px}pre.diff .add{color:#86efac}pre.diff .del{color:#fca5a5}
pre.diff .hunk{color:#93c5fd}.row{display:flex;gap:8px;align-items:center;flex-wrap:wrap}
textarea{width:100%;min-height:60px;font:inherit}button{font:inherit;padding:6px 16px;border-radius:6px;border:0;
cursor:pointer;color:#fff}button.approve{background:#16a34a}button.reject{background:#dc2626}
button.move{background:#2563eb}
.msg{margin-top:6px;font-weight:600}.msg.err{color:#dc2626}.msg.okm{color:#16a34a}
ul.plain{margin:4px 0;padding-left:18px}
.env{display:inline-block;padding:2px 10px;border-radius:999px;background:#e5e7eb;margin-right:6px;font-size:13px}
.env.live{background:#dcfce7}.env.pending{background:#fef3c7}
.note.late{color:#92400e;font-size:.85em}
"""

BADGE = {True: '<span class="badge ok">passed</span>', False: '<span class="badge bad">failed</span>'}


def _local(iso: str | datetime | None, tz: ZoneInfo) -> str:
    if iso is None:
        return "—"
    dt = datetime.fromisoformat(iso) if isinstance(iso, str) else iso
    return dt.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def page(title: str, body: str, caller: Caller | None, *, active: str = "") -> str:
    who = (f'<span class="me">signed in as <b>{esc(caller.user)}</b> '
           f'({esc(", ".join(caller.roles) or "no pipeline role")})</span>') if caller else ""
    links = "".join(
        f'<a href="{href}"{" aria-current=page" if key == active else ""}>{label}</a>'
        for key, href, label in (("reviews", "reviews", "Reviews"), ("ops", "ops", "Deploys"))
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style>"
        '<script src="static/hms.js" defer></script></head><body><main>'
        f'<nav class="top">{links}{who}</nav>{body}</main></body></html>\n'
    )


def error_page(status: int, message: str, field: str | None, login_url: str | None) -> str:
    login = f'<p><a href="{esc(login_url)}">Log in to Airflow</a></p>' if status == 401 and login_url else ""
    where = f" (<code>{esc(field)}</code>)" if field else ""
    return page(f"{status}", f"<h1>{status}</h1><p>{esc(message)}{where}</p>{login}", None)


# ---- clerk page ---------------------------------------------------------------------


def reviews_page(waiting: list[BundleView], decided: list[BundleView], caller: Caller, config: PipelineConfig) -> str:
    tz = config.tz
    parts = ["<h1>Policy reviews</h1>",
             f'<p class="sub">Bundles waiting for approval ({len(waiting)}). Each decision is final and bound to the '
             "exact bundle hash shown.</p>"]
    if not waiting:
        parts.append('<section class="empty"><p class="muted">Nothing is waiting for review.</p></section>')
    parts += [_review_card(v, caller, tz) for v in waiting]
    if decided:
        parts.append("<h2>Recently decided — where each bundle is now</h2>")
        parts += [_decided_card(v, tz) for v in decided]
    return page("Policy reviews", "\n".join(parts), caller, active="reviews")


def _head(v: BundleView, tz: ZoneInfo) -> str:
    b = v.bundle
    p = b.protocol
    return (
        f"<h2>{esc(p.title)} — <code>{esc(p.id)}</code> v{esc(p.version)}</h2>"
        f'<p class="sub">bundle <code class="sha">{esc(b.sha256)}</code><br>author <b>{esc(p.author)}</b> · '
        f"authority {esc(p.authority or '—')} · effective {esc(_local(p.data['metadata']['effective_at'], tz))}"
        + _effective_passed(v) + "</p>"
    )


def _effective_passed(v: BundleView) -> str:
    """A protocol approved after its effective date: say plainly it will not apply to the time before."""
    if v.bundle.protocol.effective_at > clock.now():
        return ""
    live = any(e["state"] == "live" and e.get("note") for e in v.environments)
    words = ("effective date passed; in force from when it goes live in prod; not retroactive" if not live
             else "effective date passed; not retroactive")
    return f' <span class="note late">({esc(words)})</span>'


def _note(text: str | None) -> str:
    return f'<div class="note late">{esc(text)}</div>' if text else ""


def _reviews_so_far(v: BundleView) -> str:
    if not v.reviews:
        return '<p class="muted">No review yet.</p>'
    items = "".join(
        f'<li class="review {esc(r.decision)}"><b>{esc(r.user)}</b> ({esc(r.role)}) {esc(r.decision)}d'
        + (f': <q class="comment">{esc(r.comment)}</q>' if r.comment else "") + "</li>"
        for r in v.reviews
    )
    return f'<ul class="plain reviews">{items}</ul><p class="summary">{esc(v.status.summary())}</p>'


def _review_card(v: BundleView, caller: Caller, tz: ZoneInfo) -> str:
    b = v.bundle
    mine = {r.user for r in v.reviews}
    if caller.user in mine:
        form = '<p class="muted">You have recorded your decision on this bundle.</p>'
    elif not v.roles_for_caller:
        form = '<p class="muted">You hold no review role for this bundle.</p>'
    else:
        roles = "".join(f'<option value="{esc(r)}">{esc(r)}</option>' for r in v.roles_for_caller)
        form = (
            f'<form class="review-form" data-sha="{esc(b.sha256)}">'
            f'<label>Comment<textarea name="comment" maxlength="2000"></textarea></label>'
            f'<div class="row"><label>as <select name="role">{roles}</select></label>'
            '<button type="button" class="approve" data-decision="approve">Approve</button>'
            '<button type="button" class="reject" data-decision="reject">Reject</button></div>'
            '<div class="msg" role="status"></div></form>'
        )
    return (
        f'<section class="bundle" data-sha="{esc(b.sha256)}" data-state="{esc(v.state)}">{_head(v, tz)}'
        f"<h3>Approvals so far</h3>{_reviews_so_far(v)}"
        f"{_checks(v)}<h3>Changes against prod</h3>{_diff(v)}<h3>Your decision</h3>{form}</section>"
    )


def _decided_card(v: BundleView, tz: ZoneInfo) -> str:
    badge = ('<span class="badge ok">approved</span>' if v.state == "approved"
             else '<span class="badge bad">rejected</span>')
    envs = "".join(_env_chip(e, tz) for e in v.environments)
    return (
        f'<section class="bundle decided" data-sha="{esc(v.bundle.sha256)}" data-state="{esc(v.state)}">'
        f"{_head(v, tz)}<p>{badge}</p>{_reviews_so_far(v)}<p class=\"envs\">{envs}</p></section>"
    )


def _env_chip(e: dict[str, Any], tz: ZoneInfo) -> str:
    name, state = e["environment"], e["state"]
    text = {"live": "live ✓", "pending": f"scheduled {_local(e.get('activate_at'), tz)}", "absent": "—"}[state]
    return (f'<span class="env {esc(state)}" data-env="{esc(name)}" data-state="{esc(state)}">'
            f"{esc(name)}: {esc(text)}</span>{_note(e.get('note'))}")


def _checks(v: BundleView) -> str:
    out = ["<h3>Checks</h3>"]
    test = v.checks.get("test")
    scan = v.checks.get("scan")
    if test is None:
        out.append('<p class="muted">Tests: not run yet for this bundle.</p>')
    else:
        t = test.summary
        out.append(f'<p class="check test">Tests {BADGE[bool(test.ok)]} {esc(t.get("total", 0) - t.get("failed", 0))} '
                   f'of {esc(t.get("total", 0))} cases pass (both backends)</p>')
        failing = [c for c in t.get("cases", []) if not c.get("ok")]
        if failing:
            out.append('<ul class="plain">' + "".join(f"<li>{esc(c.get('name'))}: {esc(c.get('mismatches'))}</li>"
                                                      for c in failing) + "</ul>")
        out.append(_simulation(v.bundle.sha256, t.get("simulation")))
    if scan is None:
        out.append('<p class="muted">Compliance scan: not run yet for this bundle.</p>')
    else:
        sc = scan.summary
        counts_by_set = sc.get("counts") or {}
        order = sc.get("rule_sets") or sorted(counts_by_set)  # the registry keeps JSON with sorted keys
        counts = " ".join(f"{esc(k)}({esc(counts_by_set.get(k, 0))})" for k in order)
        out.append(f'<p class="check scan">Compliance (OPA) {BADGE[bool(scan.ok)]} {counts}</p>')
        findings = sc.get("findings") or []
        if findings:
            out.append('<ul class="plain">' + "".join(
                f"<li>{esc(f.get('rule_set'))}: <code>{esc(f.get('path'))}</code> {esc(f.get('message'))}</li>"
                for f in findings) + "</ul>")
        warnings = sc.get("warnings") or []  # for the reviewer: a possible proxy, an exemption legal approves
        if warnings:
            out.append('<p class="check scan-review">For review:</p><ul class="plain">' + "".join(
                f"<li>⚠ {esc(f.get('rule_set'))}: <code>{esc(f.get('path'))}</code> {esc(f.get('message'))}</li>"
                for f in warnings) + "</ul>")
    return "".join(out)


def _simulation(sha256: str, sim: dict[str, Any] | None) -> str:
    if not sim:
        return '<p class="muted">Simulation: none recorded (the protocol has no budget).</p>'
    if "protocol" not in sim:
        return (f'<p class="check simulation">Simulation {BADGE[False]} '
                f'{esc(sim.get("where"))}: {esc(sim.get("error"))}</p>')
    from hms.simulate import SimulationResult

    r = SimulationResult.from_dict(sim)
    share = f" ({100 * r.share_of_cap:.1f} % of the cap)" if r.share_of_cap is not None else ""
    return (
        f'<p class="check simulation">Simulation {BADGE[r.ok]} cost {esc(r.money(r.cost_cents))}{esc(share)} on '
        f"{esc(r.population.get('source'))} · <a href=\"reports/{esc(sha256)}\">full report</a></p>"
        f"{_synthesized(r)}"
        f'<div class="chart">{report.cost_vs_cap(r)}</div>'
    )


def _synthesized(r: SimulationResult) -> str:
    """The columns the simulation invented (from the recorded result), so a clerk does not take them for data."""
    if not r.synthesized_columns:
        return ""
    items = "".join(f"<li><code>{esc(c.name)}</code>: {esc(c.how)}</li>" for c in r.synthesized_columns)
    return ('<p class="check synthesized"><span class="badge warn">synthesized data</span> the population lacks '
            f'these columns; they were drawn from the declared inputs:</p><ul class="plain synthesized">{items}</ul>')


def _diff(v: BundleView) -> str:
    if not v.diff:
        return '<p class="muted">Identical to the version in force in prod.</p>'
    cls = {"+": "add", "-": "del", "@": "hunk"}
    lines = []
    for line in v.diff:
        c = "" if line.startswith(("+++", "---")) else cls.get(line[:1], "")
        lines.append(f'<span class="{c}">{esc(line)}</span>' if c else esc(line))
    base = f"v{v.live_version}" if v.live_version is not None else "nothing (first version)"
    return f'<p class="muted">Prod serves {esc(base)}.</p><pre class="diff">' + "\n".join(lines) + "</pre>"


# ---- ops view -------------------------------------------------------------------------


def ops_page(overview: list[dict[str, Any]], caller: Caller, config: PipelineConfig) -> str:
    tz = config.tz
    can_move = SCHEDULER_ROLE in caller.roles
    parts = ["<h1>Deploys</h1>",
             f'<p class="sub">What each environment serves per protocol; times in {esc(config.timezone)}.</p>']
    if not overview:
        parts.append('<section><p class="muted">No protocol has been pushed yet.</p></section>')
    for proto in overview:
        rows = []
        for e in proto["environments"]:
            live = e["live"]
            live_txt = (f"v{esc(live['version'])} <code>{esc(live['sha256'][:12])}</code> since "
                        f"{esc(_local(live['since'], tz))}{_note(live.get('note'))}") if live else "—"
            pend = "".join(
                f'<div class="pending" data-sha="{esc(p["sha256"])}">v{esc(p["version"])} at '
                f'<b>{esc(_local(p["activate_at"], tz))}</b>{_note(p.get("note"))}'
                + (_move_form(p["sha256"], e["environment"], config.timezone) if can_move else "") + "</div>"
                for p in e["pending"]) or "—"
            rows.append(f'<tr data-env="{esc(e["environment"])}"><td>{esc(e["environment"])}</td><td>{live_txt}</td>'
                        f"<td>{pend}</td></tr>")
        hist = "".join(
            f"<tr><td>{esc(h['environment'])}</td><td>v{esc(h['version'])}</td><td>{_state(h)}{_note(h['note'])}</td>"
            f"<td>{esc(_local(h['activate_at'], tz))}</td><td>{esc(_local(h['ended_at'], tz))}</td>"
            f"<td>{esc(h['created_by'])}</td><td><code>{esc(h['run_id'] or '')}</code></td></tr>"
            for h in proto["history"])
        parts.append(
            f'<section class="protocol" data-protocol="{esc(proto["protocol_id"])}">'
            f"<h2><code>{esc(proto['protocol_id'])}</code></h2>"
            "<table><tr><th>environment</th><th>in force</th><th>pending activation</th></tr>"
            + "".join(rows) + "</table><h3>Last deployments and rollbacks</h3>"
            '<table class="compact"><tr><th>env</th><th>version</th><th>state</th><th>activates at</th><th>ended</th>'
            "<th>by</th><th>run</th></tr>" + hist + "</table></section>"
        )
    return page("Deploys", "\n".join(parts), caller, active="ops")


def _state(h: dict[str, Any]) -> str:
    """A row a scheduler's move ended reads "moved", with from → to, who and why (one line, not a bare
    "cancelled"); the row it made says where it came from."""
    m = h.get("move")
    if m is None:
        return esc(h["state"])
    if h["state"] == "cancelled":
        return f'moved <span class="note">({esc(m["sentence"])})</span>'
    return f'{esc(h["state"])} <span class="note">({esc(m["sentence"])})</span>'


def _move_form(sha256: str, env: str, zone: str) -> str:
    return (
        f'<form class="move-form row" data-sha="{esc(sha256)}" data-env="{esc(env)}">'
        f'<label>new time ({esc(zone)}) <input name="effective_at" placeholder="00:00, ISO with offset, +30s" '
        'size="26"></label>'
        '<label>reason <input name="reason" required maxlength="500" placeholder="required: why it moves" '
        'size="30"></label>'
        '<button type="button" class="move">Move</button><span class="msg" role="status"></span></form>'
    )


ICON = (  # a scale of justice, for the Airflow navigation
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="#4b5563" stroke-width="1.8" '
    'stroke-linecap="round" stroke-linejoin="round"><path d="M12 3v18M5 21h14M4 7h16M7 7l-3 7a3 3 0 0 0 6 0z'
    'M17 7l-3 7a3 3 0 0 0 6 0z"/></svg>'
)

OPS_ICON = (  # a rocket on a launch line, for the Deploys entry: not the same picture as Reviews
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="#4b5563" stroke-width="1.8" '
    'stroke-linecap="round" stroke-linejoin="round"><path d="M12 2c3 2 5 6 5 10l-2 4H9l-2-4c0-4 2-8 5-10z'
    'M9 16l-3 3M15 16l3 3M12 9.5a1.5 1.5 0 1 0 0 .01M4 22h16"/></svg>'
)

# ---- the page script (served as a file: the CSP allows no inline script) ---------------

SCRIPT = """
"use strict";
// Buttons call the same REST API as any client. The Airflow UI keeps its token in an httpOnly cookie that
// the browser sends with these same-origin requests; the JSON content type keeps other sites out (no
// cross-site form can send it without a CORS preflight, which this app never grants).
async function hmsPost(url, body, msg) {
  msg.className = "msg"; msg.textContent = "…";
  const r = await fetch(url, {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "Accept": "application/json"}, body: JSON.stringify(body)});
  let data = {};
  try { data = await r.json(); } catch (e) { data = {detail: r.statusText}; }
  if (!r.ok) {
    msg.className = "msg err";
    msg.textContent = r.status + ": " + (data.detail || "refused") + (data.field ? " (" + data.field + ")" : "");
    return false;
  }
  msg.className = "msg okm"; msg.textContent = "recorded";
  return true;
}
document.addEventListener("click", async (ev) => {
  const btn = ev.target.closest("button[data-decision]");
  if (btn) {
    const form = btn.closest("form.review-form");
    const body = {comment: form.elements.comment.value, role: form.elements.role.value};
    const url = "api/reviews/" + encodeURIComponent(form.dataset.sha) + "/" + btn.dataset.decision;
    if (await hmsPost(url, body, form.querySelector(".msg"))) { setTimeout(() => location.reload(), 400); }
    return;
  }
  const mv = ev.target.closest("button.move");
  if (mv) {
    const form = mv.closest("form.move-form");
    const body = {effective_at: form.elements.effective_at.value, reason: form.elements.reason.value,
                  environment: form.dataset.env};
    const url = "api/activations/" + encodeURIComponent(form.dataset.sha) + "/move";
    if (await hmsPost(url, body, form.querySelector(".msg"))) { setTimeout(() => location.reload(), 400); }
  }
});
"""

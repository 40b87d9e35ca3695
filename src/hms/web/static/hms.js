"use strict";
// The HMS pages' only script (the CSP allows no inline one). Loaded in <head> without defer, so the theme
// is set before the first paint.

// ---- Airflow's theme ----------------------------------------------------------------------------------
// Airflow 3's UI (Chakra UI v3 + next-themes, attribute "class", storage key "theme") puts class "dark" or
// "light" on its own <html>. These pages are a same-origin iframe of it: read the parent's class and follow
// its changes; a page opened on its own (the report in a new tab) reads the same localStorage key; failing
// both, the system's prefers-color-scheme decides.
(function () {
  const media = window.matchMedia("(prefers-color-scheme: dark)");
  function parentRoot() {
    try {
      return window.parent && window.parent !== window ? window.parent.document.documentElement : null;
    } catch (e) {
      return null; // not same-origin: the system decides
    }
  }
  function airflowTheme() {
    const root = parentRoot();
    if (root) {
      if (root.classList.contains("dark")) return "dark";
      if (root.classList.contains("light")) return "light";
    }
    let stored = null;
    try { stored = window.localStorage.getItem("theme"); } catch (e) { stored = null; }
    if (stored === "dark" || stored === "light") return stored;
    return media.matches ? "dark" : "light";
  }
  function apply() { document.documentElement.dataset.theme = airflowTheme(); }
  apply();
  const root = parentRoot();
  if (root) new MutationObserver(apply).observe(root, {attributes: true, attributeFilter: ["class"]});
  media.addEventListener("change", apply);
  window.addEventListener("storage", (ev) => { if (ev.key === "theme") apply(); });
})();

// ---- times in messages --------------------------------------------------------------------------------
// The API states instants as ISO 8601 in UTC; the pages show every time in the pipeline's zone (named on
// <html data-timezone>) with UTC on hover, as the server-rendered <time> elements do.
const ISO_INSTANT = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})/g;

function hmsFormat(date, zone) {
  const parts = {};
  for (const p of new Intl.DateTimeFormat("en-US", {timeZone: zone, year: "numeric", month: "2-digit",
    day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZoneName: "short"})
    .formatToParts(date)) parts[p.type] = p.value;
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute} ${parts.timeZoneName}`;
}

function hmsTimedText(el, text) {
  const zone = document.documentElement.dataset.timezone || "UTC";
  el.textContent = "";
  let last = 0;
  for (const m of text.matchAll(ISO_INSTANT)) {
    const date = new Date(m[0]);
    if (isNaN(date)) continue;
    el.append(text.slice(last, m.index));
    const t = document.createElement("time");
    t.dateTime = date.toISOString();
    t.title = hmsFormat(date, "UTC");
    t.textContent = hmsFormat(date, zone);
    el.append(t);
    last = m.index + m[0].length;
  }
  el.append(text.slice(last));
}

// ---- buttons ------------------------------------------------------------------------------------------
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
    hmsTimedText(msg, r.status + ": " + (data.detail || "refused") + (data.field ? " (" + data.field + ")" : ""));
    return false;
  }
  msg.className = "msg okm"; msg.textContent = "recorded";
  return true;
}

document.addEventListener("click", async (ev) => {
  // Approve / Reject open the confirmation naming the exact hash; only its "Record" button sends the decision.
  const btn = ev.target.closest("button[data-decision]");
  if (btn) {
    const form = btn.closest("form.review-form");
    const dialog = form.querySelector("dialog.confirm-decision");
    dialog.dataset.decision = btn.dataset.decision;
    dialog.querySelector(".what").textContent = btn.dataset.decision === "approve" ? "Approve" : "Reject";
    dialog.querySelector(".role").textContent = form.elements.role.value;
    dialog.showModal();
    return;
  }
  const cancel = ev.target.closest("dialog.confirm-decision button.cancel");
  if (cancel) { cancel.closest("dialog").close(); return; }
  const confirm = ev.target.closest("dialog.confirm-decision button.confirm");
  if (confirm) {
    const dialog = confirm.closest("dialog");
    const form = dialog.closest("form.review-form");
    dialog.close();
    const body = {comment: form.elements.comment.value, role: form.elements.role.value};
    const url = "api/reviews/" + encodeURIComponent(form.dataset.sha) + "/" + dialog.dataset.decision;
    if (await hmsPost(url, body, form.querySelector(".msg"))) { setTimeout(() => location.reload(), 400); }
    return;
  }
  const mv = ev.target.closest("button.move");
  if (mv) {
    const form = mv.closest("form.move-form");
    // The picker's wall time goes with the zone it was shown in; otherwise the text, read like --schedule.
    const wall = form.elements.wall_time.value;
    const body = wall ? {effective_at: wall, zone: form.dataset.zone} : {effective_at: form.elements.effective_at.value};
    body.reason = form.elements.reason.value;
    body.environment = form.dataset.env;
    const url = "api/activations/" + encodeURIComponent(form.dataset.sha) + "/move";
    if (await hmsPost(url, body, form.querySelector(".msg"))) { setTimeout(() => location.reload(), 400); }
  }
});

"""A rollback made outside a pipeline run leaves a note on the Airflow run that had deployed what it undid.

Without it the grid lies: the run that took v3 to prod stays green, described "…v3", while prod serves v2
again since someone ran ``hms rule rollback`` (or the ops REST API's ``POST /api/rollbacks``; ``--run`` /
``/api/rollbacks/run`` too, unless it is the pipeline undoing its own run, whose fail_run says so). The rollback
itself is the registry's (hms.deployments) and stays the truth; the note only carries it to where ops look
first: ``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}`` with a ``note`` (``hms.airflow_api.AirflowApi.add_note``,
the one Airflow REST client), e.g.::

    prod rolled back to v2 at 2026-12-03T08:14:05-05:00 (America/New_York) by dana: wrong poverty table

Who is the authenticated principal the rollback recorded, never a typed-in name. Which runs: those whose
deployment rows the rollback ended (``rolled_back``, or ``cancelled`` while still pending) — read from the
rows, not guessed from the bundle.

Where Airflow is — configuration, read from the environment (the same variables ``hms ci run`` reads):
``HMS_AIRFLOW_URL`` (the API server, e.g. http://127.0.0.1:8080), ``HMS_AIRFLOW_USER`` (default ``admin``)
and ``HMS_AIRFLOW_PASSWORD``. The note is best effort by design: the rollback has committed before it is
written, and an emergency rollback must never wait on, or fail because of, the orchestrator. Airflow
unreachable, refusing the login, not knowing the run, or not configured: the rollback succeeds and says so
in one warning line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from hms.registry.models import Deployment

URL_ENV, USER_ENV, PASSWORD_ENV = "HMS_AIRFLOW_URL", "HMS_AIRFLOW_USER", "HMS_AIRFLOW_PASSWORD"
TIMEOUT = 5.0  # seconds per request: the rollback has answered already; a hung Airflow must not hold it


@dataclass(frozen=True)
class AirflowAccess:
    """Where the Airflow REST API is, and whom to log in as (from the environment: ``from_env``)."""

    url: str
    user: str
    password: str

    @classmethod
    def from_env(cls) -> AirflowAccess | None:
        """``HMS_AIRFLOW_URL`` / ``HMS_AIRFLOW_USER`` / ``HMS_AIRFLOW_PASSWORD``; None when no URL is set."""
        url = os.environ.get(URL_ENV, "").strip()
        if not url:
            return None
        return cls(url, os.environ.get(USER_ENV, "").strip() or "admin", os.environ.get(PASSWORD_ENV, ""))


@dataclass(frozen=True)
class RunNote:
    """One line for one Airflow run: what a rollback outside it did to what it had deployed."""

    dag_id: str
    run_id: str
    text: str


def ended_rows(before: dict[int, str], after: Iterable[Deployment]) -> list[Deployment]:
    """The rows a rollback ended: ``rolled_back`` or ``cancelled`` now, not before (``before``: id → state)."""
    return [d for d in after if d.state in ("rolled_back", "cancelled") and before.get(d.id) != d.state]


def rollback_notes(
    ended: Sequence[Deployment],
    *,
    in_force: Mapping[str, Deployment | None],
    by: str,
    reason: str | None,
    at: datetime,
    tz: str,
    order: Sequence[str] = (),
) -> list[RunNote]:
    """One note per run whose deployments the rollback ended (rows without a run id — made by hand — get none),
    naming each environment it ended there: ``prod rolled back to v2`` (``staging …; preprod …`` for several).

    ``in_force`` is what each environment serves once the rollback has switched (None: nothing, a withdrawal);
    ``at`` when it takes effect, written in the pipeline's time zone ``tz``, named. Environments are named in
    the pipeline's ``order`` (staging, preprod, prod), whatever order the database returned the rows in.
    """
    from hms.ci import dag_id_for

    when = at.astimezone(ZoneInfo(tz)).isoformat(timespec="seconds")
    why = f": {reason.strip()}" if reason and reason.strip() else " (no reason given)"
    parts: dict[tuple[str, str], list[str]] = {}
    rank = {env: i for i, env in enumerate(order)}
    for d in sorted(ended, key=lambda d: (rank.get(d.environment, len(rank)), d.environment, d.id)):
        if not d.run_id:
            continue
        now_serving = in_force.get(d.environment)
        if d.state == "cancelled":
            what = f"{d.environment}: v{d.version} cancelled before it came into force"
        elif now_serving is None or now_serving.bundle_sha256 == d.bundle_sha256:
            what = f"{d.environment}: v{d.version} withdrawn, no version in force"
        else:
            what = f"{d.environment} rolled back to v{now_serving.version}"
        said = parts.setdefault((d.protocol_id, d.run_id), [])
        if what not in said:
            said.append(what)
    return [
        RunNote(dag_id_for(pid), run_id, f"{'; '.join(whats)} at {when} ({tz}) by {by}{why}")
        for (pid, run_id), whats in parts.items()
    ]


def annotate(notes: Sequence[RunNote], access: AirflowAccess | None) -> list[str]:
    """Add each note to its run; the lines to print: one per run annotated, at most one warning for the rest."""
    if not notes:
        return []
    runs = ", ".join(f"{n.dag_id}/{n.run_id}" for n in notes)
    if access is None:
        return [f"[rollback] ⚠ Airflow run {runs} was not annotated: {URL_ENV} is not set"]
    import httpx

    from hms.airflow_api import AirflowApi
    from hms.errors import BadInput

    api = AirflowApi(access.url, access.user, access.password, timeout=TIMEOUT)
    done, missed, why = [], [], ""
    try:
        api.login()
        for n in notes:
            if api.run(n.dag_id, n.run_id) is None:
                missed.append(f"{n.dag_id}/{n.run_id}")
                why = why or f"Airflow at {access.url} has no such run"
                continue
            api.add_note(n.dag_id, n.run_id, n.text)
            done.append(f"[rollback] 📝 note on Airflow run {n.dag_id}/{n.run_id}: {n.text}")
    except (httpx.HTTPError, BadInput) as e:
        left = [f"{n.dag_id}/{n.run_id}" for n in notes if not any(f"{n.dag_id}/{n.run_id}:" in d for d in done)]
        missed = sorted(set(missed) | set(left))
        why = f"Airflow at {access.url} unreachable ({type(e).__name__})" if isinstance(e, httpx.HTTPError) else str(e)
    if missed:
        done.append(f"[rollback] ⚠ Airflow run {', '.join(missed)} was not annotated: {why}")
    return done

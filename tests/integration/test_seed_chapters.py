"""The seed chapters' commands, exactly as the chapters print them, in sequence (issue 13, item 3).

Each chapter runs as a user types it: ``hms`` in a subprocess, in a working directory holding what
the chapter names — protocol.yml, wildfire-aid-2024.json, rollback.sh, .hms-ci/policy-pipeline.yml —
as this process's OS account (hms.identity). Each command must exit 0 and print its key lines.
The only commands added between the chapter's are the ones its prose implies and that exist
verbatim elsewhere in the seed: two clerks' reviews before prod, the staging and preprod deploys
chapter B's prod deploy follows, and (chapter B) the test, scan and preprod chaos whose recorded
results every environment's gate asks for (chapter A's promote runs those itself).

A command typed by another person (``Seed.hms(actor=...)``: the clerks' reviews) runs in a shell where
that person logged in: the CLI is then a client of the HMS API (``hms api serve`` on the seed's
registry, started on first use), which takes who acts from the person's Airflow token (tests/api_helpers).
Where two clerks' approvals are only setup for a promote, they are recorded in-process.

Nothing here depends on today's date: every protocol gets its ``metadata.effective_at`` computed
when the test runs (tests/dated_protocols.py), and the working directory's pipeline config drops the
freeze windows (absolute dates, and a Sunday night window) the repository's config carries. The
commands read that copy through HMS_PIPELINE_CONFIG: without it ``hms`` reads the checkout's config,
not the working directory's.

The other tests here are the cheap ones: what a bare protocol id means and how its refusals read,
``--role`` inferred or refused, push's next-step lines, a failed promote running ``rollback.sh``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from hms.approvals import same_person
from hms.chaos import free_port
from hms.ci import run_id_for
from hms.identity import os_account
from hms.pipeline_config import load_pipeline_config
from tests import dated_protocols
from tests.api_helpers import Api, running_api
from tests.conftest import ROOT
from tests.deploy_helpers import promote_all, ready, ready_ref, record, record_checks_for, review_as

HMS = str(Path(sys.executable).with_name("hms"))
PID = "wildfire-aid-2024"

CHAPTER_A = [
    ["policy", "pack", "protocol.yml", "--out", "pkg.tgz"],
    ["policy", "test", "pkg.tgz"],
    ["scan", "pkg.tgz", "--rules", "privacy,ethics"],
    ["chaos", "run", "--target", "staging", "--time", "5m"],
    ["promote", "pkg.tgz", "--targets", "staging,preprod,prod", "--rollback", "rollback.sh", "--schedule", "00:00"],
]
CHAPTER_B = [
    ["ci", "run", ".hms-ci/policy-pipeline.yml"],
    ["rule", "push", "wildfire-aid-2024.json"],
    ["rule", "review", PID, "--approve"],
    ["rule", "deploy", PID, "--env", "prod"],
    ["rule", "rollback", PID, "--to", "previous"],
]
REVIEW, DEPLOY_PROD = CHAPTER_B[2], CHAPTER_B[3]

# Chapter B's v3 took effect an hour ago: prod goes live as soon as its gates are met (not retroactively,
# hms.effective_time), so the run does not wait for a time. Chapter A covers the scheduled activation.
PIPELINE_EFFECTIVE_IN = timedelta(hours=-1)


class Seed:
    """The chapter's working directory and the environment its commands run with."""

    def __init__(self, cwd: Path, env: dict[str, str], stack: contextlib.ExitStack) -> None:
        self.cwd, self.env, self._stack = cwd, env, stack
        self._api: Api | None = None
        self.took: list[tuple[str, float]] = []

    def hms(self, argv: list[str], *, actor: str | None = None, ok: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``hms argv`` as this process's OS account, or typed by ``actor`` in a shell where they logged in."""
        env = self.env
        if actor is not None and not same_person(actor, os_account()):
            if self._api is None:
                self._api = self._stack.enter_context(running_api(self.env))
            env = self._api.as_user(actor)
        t0 = time.monotonic()
        r = subprocess.run([HMS, *argv], cwd=self.cwd, env=env, capture_output=True, text=True,
                           timeout=timeout)
        self.took.append((" ".join(argv), time.monotonic() - t0))
        if ok and r.returncode != 0:
            raise AssertionError(f"hms {' '.join(argv)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def config(self):
        return load_pipeline_config(self.cwd / ".hms-ci" / "policy-pipeline.yml")

    def timings(self) -> str:
        return "\n".join(f"  {t:6.1f} s  hms {cmd}" for cmd, t in self.took)


@pytest.fixture
def seed(tmp_path: Path, hms_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Seed]:
    cwd = tmp_path / "seed"
    (cwd / ".hms-ci").mkdir(parents=True)
    config = yaml.safe_load((ROOT / ".hms-ci" / "policy-pipeline.yml").read_text())
    config["freeze_windows"] = []  # dated windows would make the outcome depend on the day the test runs
    config["chaos"]["time"] = "2s"  # chapter B's pipeline chaos; chapter A gives --time 5m itself
    (cwd / ".hms-ci" / "policy-pipeline.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copy2(ROOT / "include" / "rollback.sh", cwd / "rollback.sh")
    dated_protocols.write(cwd / "protocol.yml", 3)
    dated_protocols.write(cwd / "wildfire-aid-2024.json", 4)  # the same rules, a new version
    env = {
        **os.environ,
        "HMS_HOME": str(hms_home),
        "HMS_PIPELINE_CONFIG": str(cwd / ".hms-ci" / "policy-pipeline.yml"),
        "HMS_BIN": HMS,  # rollback.sh calls it
    }
    env.pop("HMS_DATABASE_URL", None)
    monkeypatch.setenv("HMS_PIPELINE_CONFIG", env["HMS_PIPELINE_CONFIG"])  # what in-process helpers pin too
    with contextlib.ExitStack() as stack:
        yield Seed(cwd, env, stack)


def _law_in_force(seed: Seed) -> None:
    """What chapter A finds: v2 in force everywhere (chaos stresses what staging serves)."""
    cfg = seed.config()
    b = ready(record(dated_protocols.build(2)), cfg)  # its test cases are the goldens chaos checks answers against
    promote_all(b, cfg)


def _in_lines(out: str, *expected: str) -> None:
    """Each expected text starts a line of ``out``, in this order."""
    lines = out.splitlines()
    at = [next((i for i, line in enumerate(lines) if line.startswith(e)), None) for e in expected]
    assert None not in at, (expected, out)
    assert at == sorted(at), out


@pytest.mark.slow
def test_chapter_a_verbatim_pack_test_scan_chaos_5m_promote_at_midnight(seed: Seed) -> None:
    """Chapter A's five commands, the chaos window a real five minutes.

    Why real: a speed-up under libfaketime (``faketime -f '+0 x10' hms chaos run …``) was measured and
    does not work with Python: a timed wait (``threading.Event.wait(0.05)``, the fleet supervisor's
    loop) never returns under a sped-up clock (libfaketime 0.9.10 does not fake ``sem_clockwait``), so
    no killed replica was restarted and health fell to 41.65 % (40 s wall). With
    FAKETIME_DONT_FAKE_MONOTONIC=1 nothing is sped up (the window is measured on the monotonic clock)
    and ``time.sleep`` fails with EINVAL. So the five minutes are real, once, in this test: 305 s wall,
    ~300 s CPU (three replicas and two load workers), 145,433 requests, 4 kills and restarts, health
    100 % when measured; the whole test 310 s. Everything else in the chapter takes ~5 s. Marked
    ``slow``, it stays out of the suite's shifted-clock tiers: once is enough for a five-minute window,
    and its date-dependent steps are the cheap ones tested there too.
    """
    _law_in_force(seed)
    pack, test, scan, chaos, promote = CHAPTER_A

    out = seed.hms(pack).stdout
    assert out.startswith("pkg.tgz sha256:") and (seed.cwd / "pkg.tgz").is_file()
    sha = out.split("sha256:")[1].split()[0]
    _in_lines(seed.hms(test).stdout, f"[test] ✅ 9 tests ({PID} v3, both backends)", "[simulate] ✅ cost")
    _in_lines(seed.hms(scan).stdout, f"[scan] privacy(0) ethics(0) ✅ {PID} v3")

    # The approval gate of prod: two clerks review what was just packed, by its protocol id.
    first = seed.hms(REVIEW, actor="alice").stdout
    _in_lines(first, f"[review] ✅ alice (legal) approved {PID} v3 ({sha[:12]})", "[review] waiting: 1 approval(s)")
    _in_lines(seed.hms(REVIEW, actor="bob").stdout, f"[review] ✅ bob (budget) approved {PID} v3",
              "[review] approved by alice (legal), bob (budget)")

    out = seed.hms(chaos, timeout=420).stdout
    _in_lines(out, "[chaos] staging (local): 3 replicas, window 300s", "[chaos] steady state before: ✅",
              "[chaos] steady state after: ✅", "[chaos] ✅ survived faults")

    out = seed.hms(promote).stdout
    _in_lines(out, f"[deploy] staging ✅ {PID} v3 live", f"[deploy] preprod ✅ {PID} v3 live",
              "[deploy] prod SCHEDULED@", "[deploy] staging ✅ preprod ✅ prod SCHEDULED@")
    last = out.strip().splitlines()[-1]
    assert "T00:00:00" in last, last  # the next midnight in the pipeline's timezone
    status = json.loads(seed.hms(["rule", "status", PID, "--json"]).stdout)
    served = {e["environment"]: e for e in status["environments"]}
    assert served["staging"]["live"] == served["preprod"]["live"] == {"version": 3, "sha256": sha}
    assert seed.hms(["audit", "verify"]).returncode == 0
    print("chapter A:\n" + seed.timings())


def _clerks(seed: Seed, stop: threading.Event) -> None:
    """alice, then bob, approve the bundle the run waits on, by protocol id (exit 2 until it is recorded)."""
    for clerk in ("alice", "bob"):
        while not stop.is_set():
            if seed.hms(REVIEW, actor=clerk, ok=False).returncode == 0:
                break
            stop.wait(3)


@pytest.mark.airflow
@pytest.mark.slow
def test_chapter_b_verbatim_ci_run_push_review_deploy_rollback(seed: Seed, tmp_path: Path) -> None:
    """Chapter B's five commands: the pipeline runs v3 to prod (no Airflow server: ``dag.test`` here),
    then v4 is pushed as JSON, reviewed, deployed to prod by protocol id, and rolled back to v3.

    The working directory is a checkout as ``hms ci run`` expects one: include/protocols (v3, in effect
    since an hour ago), dags/ (a copy, so the DAG files find this directory's protocols), plugins/
    and devtools/ (links: the DAG runs here under this directory's devtools.local_run). Its
    ``.airflow/stack.json`` names a port nothing listens on — a stack started here once and stopped — so
    the verbatim command runs the DAG here instead of asking 127.0.0.1:8080, where another stack on this
    machine might answer. The pipeline's chaos window is the config copy's 2 s.
    """
    cwd = seed.cwd
    dated_protocols.write(cwd / "include" / "protocols" / f"{PID}.yml", 3, offset=PIPELINE_EFFECTIVE_IN)
    shutil.copy2(ROOT / "include" / "rollback.sh", cwd / "include" / "rollback.sh")
    shutil.copytree(ROOT / "dags", cwd / "dags")
    (cwd / "plugins").symlink_to(ROOT / "plugins")
    (cwd / "devtools").symlink_to(ROOT / "devtools")
    (cwd / ".airflow").mkdir()
    (cwd / ".airflow" / "stack.json").write_text(json.dumps({"url": f"http://127.0.0.1:{free_port()}"}))
    seed.env.update({"HMS_AIRFLOW_URL": "", "HMS_CI_AIRFLOW_HOME": str(tmp_path / "airflow-ci"),
                     "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    ci_run, push, review, deploy_prod, rollback = CHAPTER_B

    stop = threading.Event()
    clerks = threading.Thread(target=_clerks, args=(seed, stop), daemon=True)
    clerks.start()
    try:
        out = seed.hms(ci_run, timeout=600).stdout
    finally:
        stop.set()
        clerks.join(timeout=60)
    _in_lines(out, f"[ci] policy_{PID}: no Airflow API server; running the DAG here", f"[build] 📦 {PID}@3",
              "[test] ✅ 9 tests", "[comp] ✅ privacy(0) ethics(0) legal(0)",
              "[review] ✅ approved by alice (legal), bob (budget)", "[chaos] ✅ survived faults",
              "[deploy] staging ✅ preprod ✅ prod ✅ live from", "[flip] prod ✅ live: serves v3",
              "[publish] ✅ released", f"[ci] ✅ policy_{PID} run")

    out = seed.hms(push).stdout
    sha4 = json.loads(seed.hms([*push, "--json"]).stdout)["sha256"]
    _in_lines(out, f"[push] ✅ pushed {PID} v4 sha256:{sha4}",
              f"[push] next: with Airflow up (make up), the intake DAG hms_intake starts policy_{PID} run "
              f"{run_id_for(sha4)} within a minute",
              f"[push] next: with no Airflow running: hms ci run .hms-ci/policy-pipeline.yml --bundle {PID}@4")

    _in_lines(seed.hms(review, actor="alice").stdout, f"[review] ✅ alice (legal) approved {PID} v4",
              "[review] waiting: 1 approval(s); 1 more needed; missing role(s): budget")
    _in_lines(seed.hms(review, actor="bob").stdout, "[review] approved by alice (legal), bob (budget)")
    # The evidence every environment's gate asks for (hms.evidence), with the seed's own commands on the pushed
    # version (recorded: the governed settings, a registered bundle) — what the intake's run would record.
    _in_lines(seed.hms(["policy", "test", f"{PID}@4"]).stdout, f"[test] ✅ 9 tests ({PID} v4, both backends)")
    _in_lines(seed.hms(["scan", f"{PID}@4"]).stdout, f"[scan] privacy(0) ethics(0) legal(0) ✅ {PID} v4")
    for env in ("staging", "preprod"):  # prod takes what preprod serves
        _in_lines(seed.hms(["rule", "deploy", PID, "--env", env]).stdout, f"[deploy] {env} ✅ {PID} v4 live")
    _in_lines(seed.hms(["chaos", "run", "--target", "preprod", "--protocol", PID], timeout=180).stdout,
              "[chaos] ✅ survived faults")
    _in_lines(seed.hms(deploy_prod).stdout, f"[deploy] prod ✅ {PID} v4 live ({sha4[:12]})")

    _in_lines(seed.hms(rollback).stdout, f"[rollback] ✅ prod: {PID} v3 in force")
    assert "prod       live v3" in seed.hms(["rule", "status", PID]).stdout
    assert seed.hms(["audit", "verify"]).returncode == 0
    print("chapter B:\n" + seed.timings())


# ---- the cheap ones ------------------------------------------------------------------------------------------


def _audit(seed: Seed) -> str:
    return seed.hms(["audit", "log", "--json"]).stdout


def test_review_by_protocol_id_infers_the_role_or_names_the_choices_and_changes_nothing(seed: Seed) -> None:
    seed.hms(["rule", "push", "protocol.yml"])
    before = _audit(seed)
    r = seed.hms(REVIEW, actor="carol", ok=False)  # carol holds legal and budget, both still missing
    assert r.returncode == 2
    assert "hms: error: --role: carol could review as legal or budget (still missing): choose one with --role" in (
        r.stderr)
    r = seed.hms(REVIEW, actor="dana", ok=False)
    assert r.returncode == 2 and "dana holds no review role of this bundle" in r.stderr
    r = seed.hms(REVIEW, actor="drafting-office", ok=False)
    assert r.returncode == 2 and "drafting-office is the author of this protocol" in r.stderr
    assert _audit(seed) == before  # refused: nothing recorded
    seed.hms(REVIEW, actor="alice")
    out = seed.hms(REVIEW, actor="carol").stdout  # now only budget is missing
    assert f"[review] ✅ carol (budget) approved {PID} v3" in out
    r = seed.hms(REVIEW, actor="bob", ok=False)
    assert r.returncode == 2 and f"nothing of {PID} awaits review: {PID}@3" in r.stderr
    assert "is already approved by alice (legal), carol (budget)" in r.stderr
    # --user and --role given as before still work when --user names who is logged in, and say who acted
    seed.hms(["rule", "push", "wildfire-aid-2024.json"])
    out = seed.hms([*REVIEW, "--user", "bob", "--role", "budget"], actor="bob").stdout
    assert f"[review] ✅ bob (budget) approved {PID} v4" in out


def test_a_bare_id_that_is_also_a_hash_prefix_is_refused_naming_both_candidates(seed: Seed) -> None:
    sha = json.loads(seed.hms(["rule", "push", "protocol.yml", "--json"]).stdout)["sha256"]
    hexid = sha[:10]
    dated_protocols.write(seed.cwd / "hex.json", 1, pid=hexid)
    sha_hex = json.loads(seed.hms(["rule", "push", "hex.json", "--json"]).stdout)["sha256"]
    before = _audit(seed)
    for argv in (["rule", "review", hexid, "--approve"], ["rule", "deploy", hexid, "--env", "staging"]):
        r = seed.hms(argv, ok=False)  # refused whoever asks
        assert r.returncode == 2, r.stderr
        assert f"hms: error: bundle: '{hexid}' is ambiguous" in r.stderr
        assert f"{hexid}@1 ({sha_hex[:12]})" in r.stderr and f"{PID}@3 ({sha[:12]})" in r.stderr
    assert _audit(seed) == before


def test_deploy_by_protocol_id_follows_promotion_and_says_what_comes_first(seed: Seed) -> None:
    seed.hms(["rule", "push", "protocol.yml"])
    r = seed.hms(DEPLOY_PROD, ok=False)
    assert r.returncode == 2
    assert (f"hms: error: bundle: nothing of {PID} is in force in preprod, and prod takes the bundle in force "
            "there: deploy to preprod first") in r.stderr
    r = seed.hms(["rule", "deploy", PID, "--env", "staging"], ok=False)  # chosen; the gates are the deploy's check
    assert r.returncode == 1 and "approval policy not met" in r.stderr
    assert "no recorded passing test for sha256:" in r.stderr and "hms policy test sha256:" in r.stderr
    ready_ref(f"{PID}@3")
    for env in ("staging", "preprod", "prod"):
        seed.hms(["rule", "deploy", PID, "--env", env])


def test_push_of_a_json_protocol_prints_the_next_run_and_a_repeat_says_it_is_known(seed: Seed) -> None:
    out = seed.hms(["rule", "push", "wildfire-aid-2024.json"]).stdout
    assert f"[push] ✅ pushed {PID} v4" in out and f"starts policy_{PID} run bundle-" in out
    assert "hms ci run .hms-ci/policy-pipeline.yml --bundle wildfire-aid-2024@4" in out
    seed.hms(["rule", "push", "protocol.yml"])  # v3 after v4: recorded, but the intake takes only the newest
    again = seed.hms(["rule", "push", "protocol.yml"]).stdout
    assert f"already known {PID} v3" in again
    assert f"[push] next: no pipeline run for this bundle: {PID} v4 is newer" in again


def _two_clerks_approve(ref: str) -> None:
    """Setup for a promote: alice's and bob's approvals, in-process (two people; a CLI call here is one)."""
    review_as(ref, "alice", "legal")
    review_as(ref, "bob", "budget")


def test_a_promote_that_fails_nothing_before_writing_deploys_nowhere(seed: Seed) -> None:
    seed.hms(CHAPTER_A[0])
    before = _audit(seed)
    r = seed.hms(CHAPTER_A[4], ok=False)  # no approvals, no recorded checks: every target refused up front
    assert r.returncode == 1, r.stdout + r.stderr
    assert "nothing deployed: staging, preprod, prod: approval policy not met" in r.stderr
    assert "rolling back" not in r.stdout
    assert _audit(seed) == before


def test_promote_runs_the_chaos_stage_in_the_chaos_environment_and_records_it(seed: Seed) -> None:
    """A hand-run promote takes the pipeline's path: through preprod's chaos experiment to prod."""
    sha = seed.hms(CHAPTER_A[0]).stdout.split("sha256:")[1].split()[0]
    seed.hms(CHAPTER_A[1])  # recorded: the governed settings, a registered bundle
    r = seed.hms(CHAPTER_A[2])  # the seed's two rule sets of three: run, not recorded, and it says so
    assert "[scan] not recorded as evidence: run with only the rule sets privacy,ethics" in r.stderr
    _two_clerks_approve(f"{PID}@3")
    out = seed.hms(CHAPTER_A[4]).stdout
    _in_lines(out, "[scan] privacy(0) ethics(0) legal(0) ✅", f"[deploy] staging ✅ {PID} v3 live",
              f"[deploy] preprod ✅ {PID} v3 live", "[chaos] preprod (local): 3 replicas, window 2s",
              "[chaos] ✅ survived faults", "[deploy] prod SCHEDULED@")
    entries = json.loads(_audit(seed))["entries"]  # newest first
    checks = [e["action"] for e in reversed(entries) if e["action"].startswith("check.") and e["subject"] == sha]
    assert checks == ["check.test", "check.scan", "check.chaos"]


def test_a_promote_whose_chaos_stage_fails_runs_the_relative_rollback_sh(seed: Seed) -> None:
    cfg_path = seed.cwd / ".hms-ci" / "policy-pipeline.yml"
    config = yaml.safe_load(cfg_path.read_text())
    config["chaos"].update(replicas=1, kill_fraction=1.0, time="3s")  # the only replica dies each round
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
    seed.hms(CHAPTER_A[0])
    record_checks_for(f"{PID}@3", ("test", "scan"))
    _two_clerks_approve(f"{PID}@3")
    r = seed.hms(CHAPTER_A[4], ok=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "the chaos in preprod failed (hms chaos run exited 1)" in r.stdout
    assert "rolling back preprod, staging with rollback.sh" in r.stdout
    assert "[rollback] ✅ staging" in r.stdout  # the script ran (it is not on PATH)
    status = json.loads(seed.hms(["rule", "status", PID, "--json"]).stdout)
    assert all(e["live"] is None for e in status["environments"])

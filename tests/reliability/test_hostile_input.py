"""Hostile input: what an attacker (or a careless author) can hand the pipeline, through the real commands.

Each test drives `hms`, include/rollback.sh or a running `hms serve` and checks two things: the input is
refused (exit 2 naming the field, 4xx naming the place) or rendered inert, and nothing changed — no
bundle file, no registry row, no audit entry, the service still answering.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from hms import identity
from hms.cli import main
from hms.registry import audit
from hms.registry.db import session_scope
from tests.api_helpers import running_api
from tests.conftest import WILDFIRE
from tests.deploy_helpers import record_checks_for
from tests.reliability.conftest import (
    FAMILY,
    PID,
    ROLLBACK,
    approve,
    as_json,
    audit_entries,
    audit_ok,
    hms,
    ready,
    serve,
    variant_file,
)
from tests.web_harness import served_in_thread

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"

# Strings built to break out of a shell word, a SQL literal, an HTML text node, a Kubernetes name or a line.
SHELL = ["x; rm -rf /", "$(touch /tmp/hms-pwned)", "`id`", "a && reboot", "-rf"]
SQL = ["x' OR '1'='1", "a'); DROP TABLE bundles;--"]
HTML = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]
K8S = ["Wildfire-Aid", "a" * 64, "-leading-dash", "dots.are.subdomains", "../prod"]
LINES = ["wildfire-aid-2024\n", "wildfire-aid-2024\nmalicious: 1", "wildfire\r\nX-Injected: 1"]
HOSTILE = SHELL + SQL + HTML + K8S + LINES


def _protocol(tmp_path: Path, mutate) -> Path:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(WILDFIRE.read_text())
    mutate(data)
    p = tmp_path / "hostile.yml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def _pack_in_process(capsys: pytest.CaptureFixture[str], p: Path, out: Path) -> tuple[int, str]:
    """`hms policy pack` through the CLI's own entry point (in-process: dozens of cases, one interpreter)."""
    code = main(["policy", "pack", str(p), "--out", str(out)])
    err = capsys.readouterr().err
    assert not out.exists(), "a refused protocol left a bundle file"
    with session_scope(read_only=True) as s:
        assert audit.entries(s) == [], "a refused protocol left registry rows"
    return code, err


def _rename(section: str, old: str, new: str):  # type: ignore[no-untyped-def]
    def mutate(d: dict) -> None:
        d[section] = {(new if k == old else k): v for k, v in d[section].items()}

    return mutate


@pytest.mark.parametrize("evil", HOSTILE)
def test_a_hostile_protocol_id_is_refused_at_load_naming_metadata_id_and_records_nothing(capsys, tmp_path, evil):
    p = _protocol(tmp_path, lambda d: d["metadata"].__setitem__("id", evil))
    code, err = _pack_in_process(capsys, p, tmp_path / "pkg.tgz")
    assert code == 2 and "$.metadata.id" in err and "DNS label" in err, err


@pytest.mark.parametrize("section", ["inputs", "parameters", "rules"])
@pytest.mark.parametrize("evil", [*SHELL, *SQL, *HTML, "household_size\n", "Amount"])
def test_a_hostile_field_name_is_refused_at_load_naming_the_section(capsys, tmp_path, section, evil):
    old = {"inputs": "household_income", "parameters": "per_member", "rules": "amount"}[section]
    p = _protocol(tmp_path, _rename(section, old, evil))
    code, err = _pack_in_process(capsys, p, tmp_path / "pkg.tgz")
    assert code == 2 and f"$.{section}" in err and "not a valid name" in err, err


@pytest.mark.parametrize("name", ["id-shell-injection.yml", "id-trailing-newline.yml", "input-sql-injection.yml",
                                  "author-trailing-newline.yml", "schema-id-not-dns.yml"])
def test_the_hostile_protocol_files_in_tests_data_bad_are_refused_by_push(cli, name):
    r = cli("rule", "push", str(BAD / name), check=False)
    assert r.returncode == 2 and "hms: error:" in r.stderr and name in r.stderr, r.stderr
    assert audit_entries(cli) == []


# ---- protocol files and bundles built to break the parsers (issue 16, item 1) ----------------------------------
# Each: the file, and what the one line on stderr must name (a line "file:N", a JSON path, the reason).
HOSTILE_PROTOCOLS = [
    ("deep-json.json", ":56:", "nesting deeper than 64 levels"),  # was a RecursionError traceback
    ("deep-yaml.yml", ":21:", "nesting deeper than 64 levels"),  # was 30 s of CPU, then a RecursionError
    ("deep-yaml-block.yml", ":22:", "nesting deeper than 64 levels"),
    ("huge-number.yml", ":21 at $.parameters.max_payment", "(5000 chars) is too long"),  # was a ValueError
    ("big-exponent.yml", ":21 at $.parameters.max_payment", "(401 chars) is too long"),  # was an OverflowError
    ("colliding-table-keys.yml", ":34 at $.parameters.fpl.01", "keys '1' and '01', which are the same number"),
    ("duplicate-key.json", ":60", "duplicate key 'rules' in $ (first on line 59)"),  # json kept the last one
]
# Generated (over 100 KB, not committed): tests/data/bad/make_bundles.py large_protocols().
LARGE_PROTOCOLS = [
    ("huge-table-error.json", ":1", "more than 10000 entries in $.parameters.fpl"),  # echoed 949 KB
    ("deep-at-the-end-1mb.json", ":1", "nesting deeper than 64 levels"),
    # 3,501 lines of padding, then the sample with max_payment's value nested 10,000 deep: that line is named
    ("deep-at-the-end.yml", f":{3501 + WILDFIRE.read_text().splitlines().index('  max_payment: 5000') + 1}:",
     "nesting deeper than 64 levels"),
]
HOSTILE_BUNDLES = [  # each accepted by `hms policy verify` on main
    ("duplicate-rules-key.tgz", "protocol.json:1: duplicate key 'rules' in $"),
    ("manifest-disagrees.tgz", "manifest.json: manifest field 'author' is 'mallory' but the protocol says"),
    ("trailing-bytes.tgz", "511 bytes after the end of the tar archive"),
    ("gzip-padding.tgz", "512 bytes unexpected after the gzip stream"),
    ("reordered-members.tgz", "the tar archive is not the one `hms policy pack` writes"),
    ("non-canonical-json.tgz", "protocol.json is not the canonical JSON of its protocol"),
]


def _refused_cleanly(r: subprocess.CompletedProcess[str], name: str, *says: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and r.stderr.startswith("hms: error: "), r.stderr[-2000:]
    assert len(r.stderr) < 1500 and r.stderr.count("\n") == 1, r.stderr[:300]  # one line; values clipped
    for s in (name, *says):
        assert s in r.stderr, (s, r.stderr)


@pytest.fixture(scope="module")
def large_protocols(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_bundles", BAD / "make_bundles.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    out = tmp_path_factory.mktemp("large")
    for name, text in module.large_protocols().items():
        (out / name).write_text(text)
    return out


@pytest.mark.parametrize(("name", "where", "says"), HOSTILE_PROTOCOLS + LARGE_PROTOCOLS,
                         ids=[n for n, *_ in HOSTILE_PROTOCOLS + LARGE_PROTOCOLS])
def test_a_protocol_built_to_break_the_parser_is_refused_in_one_line_quickly_and_records_nothing(
    sh, cli, tmp_path, large_protocols, name, where, says
):
    path = (BAD if (BAD / name).exists() else large_protocols) / name
    out = tmp_path / "pkg.tgz"
    t = time.monotonic()
    r = sh("policy", "pack", str(path), "--out", str(out), check=False)
    took = time.monotonic() - t
    _refused_cleanly(r, name, where, says)
    assert took < 5, f"{name}: {took:.1f} s"  # a hang guard (bench/bench_hostile.py measures the real time)
    assert not out.exists()
    assert audit_entries(cli) == []


@pytest.mark.parametrize(("name", "says"), HOSTILE_BUNDLES, ids=[n for n, _ in HOSTILE_BUNDLES])
def test_a_bundle_that_is_not_what_pack_writes_is_refused_by_verify_and_push_and_records_nothing(sh, cli, name, says):
    for args in (["policy", "verify", str(BAD / name)], ["rule", "push", str(BAD / name)]):
        t = time.monotonic()
        r = sh(*args, check=False)
        _refused_cleanly(r, name, says)
        assert time.monotonic() - t < 5
    assert audit_entries(cli) == []


@pytest.mark.parametrize("evil", [*SHELL, *SQL, *LINES, "wildfire-aid-2024 prod"])
def test_rollback_script_refuses_hostile_ids_and_environments_and_runs_nothing(env, tmp_path, evil):
    marker = Path("/tmp/hms-pwned")
    marker.unlink(missing_ok=True)
    for argv in ([evil, "prod"], [PID, evil], ["--run", evil + ";x"]):
        r = subprocess.run([str(ROLLBACK), *argv], env=env, capture_output=True, text=True, timeout=30)
        assert r.returncode == 2, (argv, r.stdout, r.stderr)
    assert not marker.exists(), "the rollback script executed injected shell"
    assert audit_entries(functools.partial(hms, env)) == []


@pytest.mark.parametrize("evil", [*SQL, "%", "_", "wildfire%"])
def test_sql_in_command_arguments_is_data_not_sql(cli, evil):
    cli("rule", "push", str(WILDFIRE))
    before = audit_entries(cli)
    for args in (["rule", "rollback", evil, "--env", "prod"], ["rule", "deploy", evil, "--env", "staging"],
                 ["rule", "review", evil, "--role", "legal", "--approve"]):
        r = cli(*args, check=False)
        assert r.returncode == 2 and "hms: error:" in r.stderr, (args, r.stderr)
    status = as_json(cli, "rule", "status", evil)
    assert all(e["live"] is None for e in status["environments"])
    assert audit_entries(cli) == before  # the bundles table and the chain are intact
    assert as_json(cli, "rule", "status", PID)["protocol"] == PID
    audit_ok(cli)


@pytest.mark.parametrize("evil", [*SHELL, *SQL, *HTML, "line one\nline two", "\u202egnp.exe", "x" * 3000])
def test_a_review_comment_is_stored_verbatim_and_cannot_forge_output_lines(cli, env, monkeypatch, evil):
    cli("rule", "push", str(WILDFIRE))
    with running_api(env) as api:  # alice, logged in: the comment travels through the HMS API as JSON
        monkeypatch.setenv("HMS_TOKEN", api.token("alice"))
        monkeypatch.setenv("HMS_API", api.url)
        cli("rule", "review", f"{PID}@3", "--role", "legal", "--approve", f"--comment={evil}")
        monkeypatch.delenv("HMS_TOKEN")
        monkeypatch.delenv("HMS_API")
    review = next(e for e in audit_entries(cli) if e["action"] == "review.approve")
    assert review["details"]["comment"] == evil  # parameterized SQL: stored as given, nothing executed
    human = cli("audit", "log").stdout.splitlines()
    assert len(human) == len(audit_entries(cli))  # one line per entry: a comment cannot forge extra lines
    audit_ok(cli)


@pytest.mark.parametrize("evil", ["mallory", "alice; rm -rf /", "alice\n", "' OR 1=1 --", "drafting-office"])
def test_a_reviewer_who_is_not_a_configured_clerk_is_refused_and_nothing_counts(cli, evil):
    cli("rule", "push", str(WILDFIRE))
    before = audit_entries(cli)
    r = cli("rule", "review", f"{PID}@3", f"--user={evil}", "--role", "legal", "--approve", check=False)
    # A typed --user is refused before any role or author check: it is not the authenticated principal.
    assert r.returncode == 2 and "hms: error: --user:" in r.stderr and "is not who is acting" in r.stderr, r.stderr
    assert audit_entries(cli) == before


# ---- approvals bound to a hash ---------------------------------------------------------------------------------
def test_approvals_of_a_superseded_bundle_do_not_let_its_successor_reach_prod(cli, tmp_path):
    v3 = as_json(cli, "rule", "push", str(WILDFIRE))["sha256"]
    ready(v3)
    v4 = as_json(cli, "rule", "push", str(variant_file(tmp_path, 4, 3000)))["sha256"]
    record_checks_for(v4)
    for e in ("staging", "preprod", "prod"):  # not even staging: every environment asks for this hash's approvals
        r = cli("rule", "deploy", v4, "--env", e, check=False)
        assert r.returncode == 1 and "approval policy not met" in r.stderr, r.stderr
    assert all(e["live"] is None and e["pending"] == [] for e in as_json(cli, "rule", "status", PID)["environments"])


def test_a_bundle_file_swapped_after_approval_is_refused_at_prod(sh, tmp_path):
    pkg = tmp_path / "pkg.tgz"
    approved = as_json(sh, "policy", "pack", str(WILDFIRE), "--out", str(pkg))["sha256"]
    approve(approved)
    sh("policy", "pack", str(variant_file(tmp_path, 4, 9000)), "--out", str(pkg))  # same name, other rules
    r = sh("policy", "verify", str(pkg), "--sha256", approved, check=False)
    assert r.returncode == 2 and "swapped or altered" in r.stderr, r.stderr
    r = sh("promote", str(pkg), "--rollback", str(ROLLBACK), check=False)
    assert r.returncode == 1 and "approval policy not met" in r.stdout + r.stderr
    status = as_json(sh, "rule", "status", PID)
    assert all(e["live"] is None and e["pending"] == [] for e in status["environments"])  # rolled back
    audit_ok(sh)


def _swap_blob(hms_home: Path, sha: str, other_sha: str) -> None:
    """An attacker with database access replaces an approved bundle's bytes with another bundle's bytes."""
    with contextlib.closing(sqlite3.connect(hms_home / "registry.db")) as c:
        other = c.execute("SELECT content FROM bundles WHERE sha256 = ?", (other_sha,)).fetchone()[0]
        c.execute("UPDATE bundles SET content = ? WHERE sha256 = ?", (other, sha))
        c.commit()


def test_a_registry_blob_swapped_after_approval_is_refused_at_deploy_and_changes_nothing(cli, hms_home, tmp_path):
    approved = as_json(cli, "rule", "push", str(WILDFIRE))["sha256"]
    approve(approved)
    other = as_json(cli, "rule", "push", str(variant_file(tmp_path, 4, 9000)))["sha256"]
    before = audit_entries(cli)
    _swap_blob(hms_home, approved, other)
    r = cli("rule", "deploy", approved, "--env", "staging", check=False)
    assert r.returncode == 2 and approved[:12] in r.stderr and "swapped or altered" in r.stderr, r.stderr
    assert audit_entries(cli) == before
    assert all(e["live"] is None for e in as_json(cli, "rule", "status", PID)["environments"])


def _deploy_everywhere(run, ref: str) -> None:  # type: ignore[no-untyped-def]
    for e in ("staging", "preprod", "prod"):
        run("rule", "deploy", ref, "--env", e)


def test_a_replica_never_serves_a_bundle_whose_registry_bytes_were_swapped(cli, env, hms_home, tmp_path):
    sha = as_json(cli, "rule", "push", str(WILDFIRE))["sha256"]
    ready(sha)
    _deploy_everywhere(cli, sha)
    other = as_json(cli, "rule", "push", str(variant_file(tmp_path, 4, 9000)))["sha256"]
    _swap_blob(hms_home, sha, other)
    with serve(env) as (url, proc):
        time.sleep(0.5)
        readyz = httpx.get(url + "/readyz", timeout=2)
        r = httpx.post(f"{url}/v1/protocols/{PID}/decide", json={"input": FAMILY}, timeout=2)
        assert readyz.status_code == 503 and readyz.json()["generation"] is None, readyz.text
        assert r.status_code == 503, r.text  # no answer at all rather than an answer from tampered rules
        assert proc.poll() is None


# ---- the decision service under hostile bodies ----------------------------------------------------------------
def _bodies() -> list[tuple[str, bytes, dict[str, str], int, list]]:
    """(name, body, headers, status, the place the JSON refusal must name)."""
    deep = b"[" * 100_000 + b"]" * 100_000
    deep_obj = b'{"input": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}"
    wide = json.dumps({"input": {f"k{i}": i for i in range(20_000)}}).encode()
    size_of = b'{"input": {"household_size": %s, "household_income": 1, "county_fire_declared": true}}'
    return [
        ("oversized (4 MiB)", b'{"input": {"x": "' + b"A" * (4 << 20) + b'"}}', {}, 413, ["body"]),
        ("oversized, chunked, no length", b"", {"x-chunked": "1"}, 413, ["body"]),
        ("lying content-length", b'{"input": {}}', {"content-length": "999999999"}, 413, ["body"]),
        ("100k nested arrays", deep, {}, 400, ["body"]),
        ("5k nested objects", deep_obj, {}, 400, ["body"]),
        ("20k unknown fields", wide, {}, 413 if len(wide) > 256 * 1024 else 422, ["body"]),
        ("not UTF-8", b'{"input": "\xff\xfe"}', {}, 400, ["body"]),
        ("not JSON", b"\x00\x01<html>", {}, 400, ["body"]),
        ("a JSON string", b'"input"', {}, 422, ["body"]),
        ("NaN and huge numbers", b'{"input": {"household_size": NaN, "household_income": 1e999,'
                                 b' "county_fire_declared": true}}', {}, 422, ["body", "input", "household_size"]),
        ("as_of in year 99999", b'{"input": {}, "as_of": "99999-01-01T00:00:00Z"}', {}, 422, ["body", "as_of"]),
        ("SQL in a field name", b'{"input": {"x\' OR 1=1 --": 1}}', {}, 422, ["body", "input", "x' OR 1=1 --"]),
        # issue 16: each of these was a 500
        ("a 5,000-digit integer", size_of % (b"9" * 5000), {}, 422, ["body", "input", "household_size"]),
        ("a 5,000-digit as_of", b'{"input": {}, "as_of": -' + b"9" * 5000 + b"}", {}, 422, ["body", "as_of"]),
        ("2**53 + 1", size_of % b"9007199254740993", {}, 422, ["body", "input", "household_size"]),
        ("1e300 income", b'{"input": {"household_size": 4, "household_income": 1e300, "county_fire_declared": true}}',
         {}, 422, ["body", "input", "household_income"]),
        ("-Infinity", size_of % b"-Infinity", {}, 422, ["body", "input", "household_size"]),
        ("a lone surrogate as a field name", b'{"input": {"\\ud800": 1}}', {}, 422, ["body", "input", "\\ud800"]),
        ("a lone surrogate as a top-level name", b'{"\\udfff": 1}', {}, 422, ["body", "\\udfff"]),
        ("a lone surrogate in as_of", b'{"input": {}, "as_of": "2026\\ud800"}', {}, 422, ["body", "as_of"]),
        ("a 100 KB field name", b'{"input": {"' + b"k" * 100_000 + b'": 1}}', {}, 422,
         ["body", "input", "k" * 199 + "\u2026"]),
    ]


def test_hostile_bodies_get_4xx_and_the_service_keeps_answering(cli, env):
    sha = as_json(cli, "rule", "push", str(WILDFIRE))["sha256"]
    ready(sha)
    _deploy_everywhere(cli, sha)
    with serve(env) as (url, proc), httpx.Client(timeout=30) as c:
        path = f"{url}/v1/protocols/{PID}/decide"
        for name, body, headers, status, loc in _bodies():
            if headers.pop("x-chunked", None):
                chunks = (b'{"input": "' + b"A" * 65536 for _ in range(64))  # 4 MiB streamed, no length
                r = c.post(path, content=chunks, headers={"content-type": "application/json"})
            elif "content-length" in headers:
                r = _raw_post(url, path, body, headers["content-length"])
            else:
                r = c.post(path, content=body, headers={"content-type": "application/json"})
            assert r.status_code == status, f"{name}: {r.status_code} {r.text[:200]}"
            detail = r.json()["detail"][0]  # every refusal is JSON naming its place, values escaped and cut
            assert detail["loc"] == loc and len(detail["msg"]) <= 800, f"{name}: {r.text[:300]}"
            assert proc.poll() is None, f"{name} killed the service"
            ok = c.post(path, json={"input": FAMILY})
            assert ok.status_code == 200 and ok.json()["outputs"]["amount"] == 4000, name
        batch = c.post(path + "/batch", json={"inputs": [FAMILY] * 1001})
        assert batch.status_code == 413
    assert b"Traceback" not in proc.stderr.read()  # type: ignore[union-attr]


def _raw_post(url: str, path: str, body: bytes, length: str) -> httpx.Response:
    """A client that lies about Content-Length (httpx would correct it): the server must not wait or allocate."""
    target = path.removeprefix(url)
    return _raw(url, f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {length}\r\nConnection: close\r\n\r\n".encode() + body)


def _raw(url: str, request: bytes) -> httpx.Response:
    """Send ``request`` bytes as they are over a socket and read the answer. A server that refuses a head
    before reading it all resets the connection once it closes; the answer it sent first is still read."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            s.sendall(request)
        data = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := s.recv(65536):
                data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head, "the server closed the connection without an answer"
    return httpx.Response(int(head.split()[1]), content=rest)


def _heads() -> list[tuple[str, bytes, str, int, list]]:
    """(name, extra header lines, query string, status, place) of request heads past the bounds (issue 16)."""
    return [
        ("a 1 MB header", b"X-Big: " + b"a" * (1 << 20) + b"\r\n", "", 431, ["header"]),
        ("a 9 KiB header line", b"X-Big: " + b"a" * 9000 + b"\r\n", "", 431, ["header", "x-big"]),
        ("20 headers of 1 KiB", b"".join(b"X-H%d: " % i + b"a" * 1000 + b"\r\n" for i in range(20)), "", 431,
         ["header"]),
        ("a 20 KB query string", b"", "?" + "q" * 20_000, 414, ["path"]),
        ("a 5,000-digit Content-Length", b"Content-Length: " + b"9" * 5000 + b"\r\n", "", 400, ["request"]),
        ("a transfer coding h11 does not implement", b"Transfer-Encoding: gzip\r\n", "", 400, ["request"]),
        ("not HTTP at all", b"\x00\xff garbage\r\n", "", 400, ["request"]),
    ]


def test_oversized_request_heads_get_431_json_and_the_service_keeps_answering(cli, env):
    sha = as_json(cli, "rule", "push", str(WILDFIRE))["sha256"]
    ready(sha)
    _deploy_everywhere(cli, sha)
    body = json.dumps({"input": FAMILY}).encode()
    with serve(env) as (url, proc), httpx.Client(timeout=30) as c:
        path = f"/v1/protocols/{PID}/decide"
        for name, extra, query, status, loc in _heads():
            length = b"" if b"Content-Length" in extra else b"Content-Length: %d\r\n" % len(body)
            r = _raw(url, f"POST {path}{query} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
                     + extra + length + b"Connection: close\r\n\r\n" + body)
            assert r.status_code == status, f"{name}: {r.status_code} {r.text[:200]}"
            assert r.json()["detail"][0]["loc"] == loc, f"{name}: {r.text[:300]}"
            assert proc.poll() is None, f"{name} killed the service"
            ok = c.post(url + path, json={"input": FAMILY}, headers={"x-fits": "a" * 8000})  # under the bounds
            assert ok.status_code == 200 and ok.json()["outputs"]["amount"] == 4000, name
    assert b"Traceback" not in proc.stderr.read()  # type: ignore[union-attr]


# ---- secrets --------------------------------------------------------------------------------------------------
SECRET = "Sup3r-S3cret-pw"


def _with_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(password=SECRET).render_as_string(hide_password=False)


@pytest.mark.postgres
def test_the_database_password_never_appears_in_cli_output_errors_or_service_logs(registry_url, env, tmp_path):
    if not registry_url.startswith("postgresql"):
        pytest.skip("the password travels in the PostgreSQL URL")
    env = {**env, "HMS_DATABASE_URL": _with_password(registry_url)}  # the test server trusts; the secret is carried
    env.update(identity.pipeline_env())  # on a shared registry only the pipeline writes directly (people: the API)
    outputs: list[str] = []

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = hms(env, *args, check=check)
        outputs.extend([r.stdout, r.stderr])
        return r

    run("db", "upgrade")
    sha = json.loads(run("rule", "push", str(WILDFIRE), "--json").stdout)["sha256"]
    record_checks_for(sha)
    approve(sha)  # in-process: people review through the HMS API, and the pipeline never reviews
    for e in ("staging", "preprod", "prod"):
        run("rule", "deploy", sha, "--env", e, "--json")
    run("rule", "status", PID)
    run("rule", "rollback", PID, "--env", "prod", "--json")
    run("audit", "log", "--json")
    run("audit", "verify")
    run("rule", "deploy", "nonexistent", "--env", "prod", check=False)
    broken = {**env, "HMS_DATABASE_URL": _with_password(registry_url.rsplit("/", 1)[0] + "/no_such_db")}
    unreachable = {**env, "HMS_DATABASE_URL": f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:1/x"}
    garbled = {**env, "HMS_DATABASE_URL": f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:notaport/x"}
    for bad in (broken, unreachable, garbled):
        for args in (["rule", "status", PID], ["audit", "verify", "--json"], ["db", "upgrade"]):
            r = hms(bad, *args, check=False)
            assert r.returncode == 2 and "Traceback" not in r.stderr and "HMS_DATABASE_URL" in r.stderr, r.stderr
            outputs.extend([r.stdout, r.stderr])
    with serve(env) as (url, proc):
        assert httpx.post(f"{url}/v1/protocols/{PID}/decide", json={"input": FAMILY}).status_code in (200, 404)
        log_env = {**unreachable, "HMS_PIPELINE_CONFIG": env["HMS_PIPELINE_CONFIG"]}
    with serve(log_env) as (url2, proc2):
        time.sleep(0.5)
        outputs.append(httpx.get(url2 + "/readyz").text)
    outputs.append(proc.stderr.read().decode())  # type: ignore[union-attr]
    outputs.append(proc2.stderr.read().decode())  # type: ignore[union-attr]
    joined = "\n".join(outputs)
    assert "***" in joined  # the redacted form is what users see
    assert SECRET not in joined


# ---- the review REST API (hms.web, the app the Airflow plugin mounts) under hostile bodies -------------------
@contextlib.contextmanager
def review_api() -> Iterator[str]:
    """hms.web served by a real uvicorn with the header identity of tests/unit/test_web_reviews.py (Airflow's
    JWT is proven in tests/integration/test_review_api.py; bodies are parsed before identity matters)."""
    from hms.web import create_app
    from tests.unit.test_web_reviews import identify

    with served_in_thread(create_app(identify), "the review API") as url:
        yield url


def test_hostile_bodies_to_the_review_api_are_refused_without_reading_them_and_it_keeps_answering(cli, env):
    sha = as_json(cli, "rule", "push", str(WILDFIRE))["sha256"]
    alice = {"x-user": "alice", "content-type": "application/json"}
    with review_api() as url, httpx.Client(timeout=30) as c:
        path = f"{url}/api/reviews/{sha}/approve"
        streamed = c.post(path, headers=alice, content=(b"x" * 65536 for _ in range(64)))  # 4 MiB, no length
        assert streamed.status_code in (411, 413), streamed.text
        assert _raw_post(url, path, b"{}", "999999999").status_code == 413
        for body in (b"[" * 30000 + b"]" * 30000, b'{"comment": NaN}', b'{"comment": "ok", "role": ["legal"]}',
                     b"\xff\xfe", b'{"comment": "ok", "extra": 1}'):
            r = c.post(path, headers=alice, content=body)
            assert r.status_code in (400, 422), (body[:40], r.status_code, r.text[:200])
        assert c.get(f"{url}/api/reviews", headers=alice).status_code == 200
    assert audit_entries(cli)[0]["action"] == "bundle.recorded"  # no review was recorded by any of it


def test_oversized_request_heads_to_hms_api_serve_get_431_json_and_it_keeps_answering(env):
    with running_api(env) as api, httpx.Client(timeout=30) as c:
        for name, extra, query, status, loc in _heads():
            r = _raw(api.url, f"GET /hms/api/openapi.json{query} HTTP/1.1\r\nHost: x\r\n".encode()
                     + extra + b"Connection: close\r\n\r\n")
            assert r.status_code == status, f"{name}: {r.status_code} {r.text[:200]}"
            assert r.json()["detail"][0]["loc"] == loc, f"{name}: {r.text[:300]}"
            assert c.get(f"{api.url}/hms/api/openapi.json").status_code == 200, name

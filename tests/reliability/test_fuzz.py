"""Property-based fuzzing of the three doors hostile input comes through (issue 16, item 3).

Hypothesis mutates the sample protocols, a packed bundle and decision requests, a bounded and derandomized
number of examples each (the same inputs on every run, so CI cannot pass one day and fail the next), and
checks the one promise every door makes: a refusal is ``BadInput`` / exit 2 with a message (a 4xx JSON body
for HTTP), never any other exception, and a refused input writes nothing — no bundle file, no registry row.

Everything runs in this process (``hms.cli.main``, FastAPI's ``TestClient``): thousands of inputs in well
under a minute. The real ``hms serve`` process meets the cases the fuzzer found in test_hostile_input.py.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import io
import json
import os
import sqlite3
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hms import bundle, protocol
from hms.cli import main
from hms.errors import HmsError
from tests.conftest import PROTOCOLS, WILDFIRE

SAMPLES = {p.name: yaml.safe_load(p.read_text()) for p in sorted(PROTOCOLS.glob("*.yml"))}

# A bounded, repeatable run: EXAMPLES inputs per property, the same ones every time.
EXAMPLES = int(os.environ.get("HMS_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # hms_home (autouse) gives the whole property one registry: each example compares rows before and after.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---- values a hostile author or client writes ------------------------------------------------------------------
SURROGATES = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)
PLAIN_ODD_TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", " ", "\x00", "\u202egnp.exe", "\ufeffid", "𝔘𝔫𝔦", "é", "a\nb: 1", "'; DROP TABLE x;--",
                     "$(id)", "../prod", "Wildfire-Aid", "x" * 300, "\\ud800", "*alias", "&anchor", "!!python/x",
                     "2026-13-45T99:00:00Z", "1e999", ".nan", "0x1f", "yes", "~"]),
)
ODD_TEXT = st.one_of(PLAIN_ODD_TEXT, SURROGATES)  # lone surrogates: what a "\ud800" escape decodes to
HUGE = st.one_of(st.integers(min_value=2**53 - 2, max_value=2**53 + 2),
                 st.integers(min_value=-(2**64), max_value=2**64), st.sampled_from([10**400, -(10**400)]))
FLOATS = st.one_of(st.floats(), st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, 5e-324, -0.0]))
# Integer literals past Python's 4,300-digit int() limit, as text (Python cannot even print such an int).
DIGITS = st.sampled_from(["9" * 5000, "-" + "1" * 4301, "0x" + "f" * 4000])


@dataclass(frozen=True)
class Values:
    """The values a property draws: text, scalars, and small trees of both."""

    text: st.SearchStrategy[str]
    keys: st.SearchStrategy[str]  # field names
    leaves: st.SearchStrategy[Any]
    tree: st.SearchStrategy[Any]
    long_digits: bool  # whether file text may carry DIGITS


def _values(text: st.SearchStrategy[str], keys: st.SearchStrategy[str] | None = None, *,
            long_digits: bool = True) -> Values:
    keys = text if keys is None else keys
    leaves = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10, max_value=10), HUGE, FLOATS, text)
    tree = st.recursive(leaves, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                        st.dictionaries(keys, kids, max_size=4)), max_leaves=12)
    return Values(text, keys, leaves, tree, long_digits)


ANY = _values(ODD_TEXT)
LEAVES, JSONISH = ANY.leaves, ANY.tree


def _children(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return list(node)
    if isinstance(node, list):
        return list(range(len(node)))
    return []


def _mutate(data: st.DataObject, doc: Any, v: Values = ANY) -> Any:
    """One structural mutation at a random place: drop, duplicate, retype, rename, nest deeply."""
    doc = copy.deepcopy(doc)
    parent, key = None, None
    node = doc
    while _children(node) and (parent is None or data.draw(st.booleans())):
        parent, key = node, data.draw(st.sampled_from(_children(node)))
        node = node[key]
    op = data.draw(st.sampled_from(["drop", "duplicate", "retype", "rename", "nest"]))
    if parent is None:
        return data.draw(v.tree) if op == "retype" else doc
    if op == "drop":
        del parent[key]
    elif op == "duplicate":
        if isinstance(parent, list):
            parent.insert(key, copy.deepcopy(node))
        else:
            parent[f"{key}_"] = copy.deepcopy(node)
    elif op == "retype":
        parent[key] = data.draw(v.tree)
    elif op == "rename" and isinstance(parent, dict):
        parent[data.draw(v.keys)] = parent.pop(key)
    elif op == "nest":
        depth = data.draw(st.integers(min_value=1, max_value=200))
        for _ in range(depth):
            node = [node] if data.draw(st.booleans()) else {"a": node}
        parent[key] = node
    return doc


def _text(data: st.DataObject, doc: Any, v: Values = ANY) -> bytes:
    """The mutated protocol as a file: YAML, JSON, or YAML with a line duplicated, dropped, spliced or given
    a very long number."""
    fmt = data.draw(st.sampled_from(["yaml", "json", "lines"]))
    if fmt == "json":
        text = json.dumps(doc, allow_nan=True, ensure_ascii=data.draw(st.booleans()))
    else:
        text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    if fmt == "lines":
        lines = text.splitlines(keepends=True) or [""]
        i = data.draw(st.integers(min_value=0, max_value=len(lines) - 1))
        edit = data.draw(st.sampled_from(["dup", "drop", "splice", *(["digits"] if v.long_digits else [])]))
        if edit == "dup":  # a duplicated line is a duplicated key (or list item)
            lines.insert(i, lines[i])
        elif edit == "drop":
            del lines[i]
        elif edit == "digits":
            head = lines[i].split(": ", 1)[0] + ": " if ": " in lines[i] else lines[i].rstrip("\n") + " "
            lines[i] = head + data.draw(DIGITS) + "\n"
        else:
            lines[i] = data.draw(v.text) + lines[i]
        text = "".join(lines)
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes bytes that are not UTF-8


def _registry_rows(home: Path) -> dict[str, int]:
    """Rows in every table of this test's SQLite registry (none before the first write creates it)."""
    path = home / "registry.db"
    if not path.exists():
        return {}
    with contextlib.closing(sqlite3.connect(path)) as c:
        tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: c.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """``hms ARGV`` through its entry point: the exit code and stderr. Any exception but SystemExit escapes and
    fails the property (that is a traceback a user would see)."""
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse's own refusals
        code = e.code if isinstance(e.code, int) else 2
    return code, capsys.readouterr().err


# ---- protocol documents ----------------------------------------------------------------------------------------
SAMPLE_NAMES = st.sampled_from(sorted(SAMPLES))


@FUZZ
@given(data=st.data(), name=SAMPLE_NAMES)
def test_a_mutated_protocol_either_loads_or_is_refused_as_bad_input(tmp_path_factory, data, name):
    doc = _mutate(data, SAMPLES[name])
    with contextlib.suppress(HmsError):  # from_data: a bundle's protocol.json, already parsed
        protocol.from_data(doc, source="fuzz.json")
    path = tmp_path_factory.mktemp("doc") / ("fuzz.json" if data.draw(st.booleans()) else "fuzz.yml")
    path.write_bytes(_text(data, doc, ANY))
    try:
        protocol.load(path)
    except HmsError as e:
        assert e.exit_code == 2 and e.message and str(path) in str(e), str(e)


@FUZZ
@given(data=st.data(), name=SAMPLE_NAMES)
def test_pack_and_push_of_a_mutated_protocol_exit_0_or_2_and_a_refusal_writes_nothing(
    hms_home, tmp_path_factory, capsys, data, name
):
    d = tmp_path_factory.mktemp("cli")
    path = d / "fuzz.yml"
    path.write_bytes(_text(data, _mutate(data, SAMPLES[name], ANY), ANY))
    out = d / "pkg.tgz"
    for argv in (["policy", "pack", str(path), "--out", str(out)], ["rule", "push", str(path)]):
        before = _registry_rows(hms_home)
        code, err = _run(capsys, *argv)
        assert code in (0, 2), (argv, code, err)
        if code == 2:  # one line naming the place: the file (and line) or the field (metadata.version)
            assert err.startswith("hms: error: ") and len(err.strip()) > len("hms: error: "), err
            assert _registry_rows(hms_home) == before, f"a refused {argv[:2]} wrote registry rows: {err}"
            assert not out.exists(), "a refused protocol left a bundle file"


# ---- bundles ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def packed() -> bytes:
    return bundle.build(protocol.load(WILDFIRE))


def _members(raw: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(raw)), mode="r:") as tar:
        return [(m, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]


def _retar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:") as tar:
        for info, content in members:
            if info.isfile():
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                tar.addfile(info)
    return gzip.compress(buf.getvalue(), mtime=0)


def _member_mutation(data: st.DataObject, raw: bytes) -> bytes:
    """A tar-level change an attacker with the file can make: rename, add, drop, link, rewrite a member."""
    members = _members(raw)
    i = data.draw(st.integers(min_value=0, max_value=len(members) - 1))
    info, content = members[i]
    op = data.draw(st.sampled_from(["rename", "add", "drop", "link", "rewrite", "reseal", "json"]))
    if op == "rename":
        info.name = data.draw(st.sampled_from(["../protocol.json", "/etc/passwd", "a/../../x", "manifest.json",
                                               "protocol.json", "extra.txt", "PROTOCOL.JSON", ""]))
    elif op == "add":
        extra = tarfile.TarInfo(data.draw(st.sampled_from(["protocol.json", "manifest.json", "evil.sh", "x/y"])))
        members.append((extra, data.draw(st.binary(max_size=64))))
    elif op == "drop":
        del members[i]
    elif op == "link":
        link = tarfile.TarInfo(info.name)
        link.type = data.draw(st.sampled_from([tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE, tarfile.FIFOTYPE,
                                               tarfile.CHRTYPE]))
        link.linkname = "/etc/passwd"
        members[i] = (link, b"")
    elif op == "rewrite":  # new bytes, the manifest left as it was
        members[i] = (info, data.draw(st.binary(max_size=256)))
    else:  # rewritten JSON: with the manifest's hash brought up to date ("reseal"), or not
        doc = json.loads(content)
        doc = _mutate(data, doc, ANY) if isinstance(doc, dict | list) else data.draw(ANY.tree)
        new = json.dumps(doc, allow_nan=True, ensure_ascii=data.draw(st.booleans())).encode("utf-8", "surrogatepass")
        members[i] = (info, new)
        if op == "reseal" and info.name == "protocol.json":
            j = next(k for k, (m, _) in enumerate(members) if m.name == "manifest.json")
            manifest = json.loads(members[j][1])
            manifest["files"]["protocol.json"] = bundle.sha256_hex(new)
            members[j] = (members[j][0], json.dumps(manifest).encode())
    return _retar(members)


def _byte_mutation(data: st.DataObject, raw: bytes) -> bytes:
    b = bytearray(raw)
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        op = data.draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        at = data.draw(st.integers(min_value=0, max_value=max(len(b) - 1, 0)))
        if op == "flip" and b:
            b[at] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
        elif op == "set" and b:
            b[at] = data.draw(st.integers(min_value=0, max_value=255))
        elif op == "cut":
            del b[at:]
        elif op == "insert":
            b[at:at] = data.draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del b[at : at + data.draw(st.integers(min_value=1, max_value=16))]
    return bytes(b)


@FUZZ
@given(data=st.data())
def test_a_mutated_bundle_verifies_only_if_its_bytes_are_unchanged_and_never_tracebacks(
    hms_home, tmp_path_factory, capsys, packed, data
):
    mutate = data.draw(st.sampled_from([_byte_mutation, _member_mutation]))
    raw = mutate(data, packed)
    path = tmp_path_factory.mktemp("bundle") / "pkg.tgz"
    path.write_bytes(raw)
    before = _registry_rows(hms_home)
    pinned, err = _run(capsys, "policy", "verify", str(path), "--sha256", bundle.sha256_hex(packed))
    assert pinned == (0 if raw == packed else 2), (pinned, err)
    if pinned == 2:
        assert err.startswith("hms: error: ") and str(path) in err, err
    code, err = _run(capsys, "policy", "verify", str(path))  # unpinned: another valid bundle may verify
    assert code in (0, 2), (code, err)
    if code == 2:
        assert err.startswith("hms: error: ") and str(path) in err, err
    assert _registry_rows(hms_home) == before


# ---- decision requests -----------------------------------------------------------------------------------------
FIELDS = ["household_size", "household_income", "county_fire_declared"]


@pytest.fixture
def service(hms_home: Path) -> Iterator[TestClient]:
    """prod serving wildfire v3, and a client on a replica (one for the whole property: hundreds of requests,
    none of which may change anything)."""
    from hms.service.app import create_app
    from hms.service.source import RegistrySource
    from tests.deploy_helpers import config, promote_all, ready, record, variant

    cfg = config()
    b = record(variant(3))
    ready(b, cfg)
    promote_all(b, cfg)
    with TestClient(create_app(RegistrySource("prod"), poll_interval=0.05)) as client:
        yield client


def _request_body(data: st.DataObject) -> bytes:
    """A JSON body near the real shape (so the fuzz reaches the rules), any JSON at all, or any bytes."""
    kind = data.draw(st.sampled_from(["near", "near", "batch", "any", "bytes", "digits"]))
    if kind == "bytes":
        return data.draw(st.binary(max_size=64))
    if kind == "digits":  # a number no Python int can be printed as (json.dumps cannot write it either)
        field = data.draw(st.sampled_from([*FIELDS, "x"]))
        return b'{"input": {"%s": %s}}' % (field.encode(), data.draw(DIGITS).encode())
    if kind == "any":
        body: Any = data.draw(JSONISH)
    else:
        rec = {f: data.draw(st.one_of(LEAVES, JSONISH)) for f in FIELDS if data.draw(st.integers(0, 5))}
        if data.draw(st.booleans()):
            rec[data.draw(ODD_TEXT)] = data.draw(LEAVES)
        body = {"inputs": [rec] * data.draw(st.integers(0, 3))} if kind == "batch" else {"input": rec}
        if data.draw(st.booleans()):
            body["as_of"] = data.draw(st.one_of(ODD_TEXT, LEAVES, st.just("2026-12-01T00:00:00Z")))
    return json.dumps(body, allow_nan=True, ensure_ascii=data.draw(st.booleans())).encode("utf-8", "surrogatepass")


@FUZZ
@given(data=st.data())
def test_a_random_decision_request_is_never_a_500(service, data):
    pid = data.draw(st.one_of(st.just("wildfire-aid-2024"), ODD_TEXT.filter(lambda s: s and "/" not in s)))
    raw = _request_body(data)
    suffix = "/batch" if raw.startswith(b'{"inputs"') else ""
    headers = {"content-type": "application/json"}
    if data.draw(st.booleans()):  # any bytes a header line can carry, up to past the 8 KiB line bound
        value = data.draw(st.binary(max_size=64).map(lambda b: b * data.draw(st.sampled_from([1, 10, 200]))))
        headers["x-fuzz"] = value.replace(b"\r", b"").replace(b"\n", b"").strip() or b"x"  # type: ignore[assignment]
    r = service.post(f"/v1/protocols/{quote(pid, safe='', errors='surrogatepass')}/decide{suffix}", content=raw,
                     headers=headers)
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        detail = r.json()["detail"][0]  # a refusal is JSON naming the place
        assert detail["loc"] and detail["msg"] and len(detail["msg"]) <= 800, r.text[:300]

"""What the DAG file needs of each protocol file, read cheaply and within a time budget.

Airflow's dag-processor re-parses the DAG file every few seconds and gives up after its timeout (50 s by
default), dropping every DAG of the file. Loading a protocol in full (PyYAML's pure-Python composer with
line tracking, the JSON Schema, the rule compiler) costs ~37 ms, so ~1,300 protocols would exceed the
timeout and a state's whole rule book would vanish from the UI. A DAG only needs a protocol's *head* —
id, version, title, author, authority, effective time — and whether the file loads at all.

So each file is keyed by the SHA-256 of its bytes (and this hms version, whose loader decides validity);
the verdict of a full load — a head, or the loader's message — is cached under ``$HMS_HOME/cache`` and a
later parse reads it back in microseconds. A file not seen before is loaded in full while the parse's
``budget`` lasts; past it, its head is read with libyaml's C parser and no validation (``checked=False``:
the DAG still runs, and its build step validates the file as always), and a later parse checks it. The
cost of a parse is therefore bounded by the budget plus ~1 ms per file, however many files change at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hms import __version__
from hms.errors import HmsError

if TYPE_CHECKING:
    from hms.protocol import Protocol

CACHE_FORMAT = "protocol-head/v1"


@dataclass(frozen=True)
class ProtocolHead:
    """A protocol file as a DAG shows it. ``checked``: a full load accepted it (False: head read unchecked)."""

    path: Path
    sha256: str
    id: str
    version: int
    title: str
    author: str
    authority: str | None
    effective_at: str
    checked: bool


@dataclass(frozen=True)
class BrokenFile:
    """A protocol file that does not load (or whose head cannot even be read): the DAG shows why."""

    path: Path
    sha256: str
    message: str


Head = ProtocolHead | BrokenFile


def protocol_files(repo: Path) -> list[Path]:
    """A checkout's protocol files (include/protocols: YAML, then JSON), each of which gets a DAG."""
    folder = repo / "include" / "protocols"
    return sorted(folder.glob("*.y*ml")) + sorted(folder.glob("*.json"))


def read_heads(paths: list[Path], cache_dir: Path, *, budget: float = 20.0) -> list[Head]:
    """Every file's head or why it does not load, in ``paths`` order; full loads stop after ``budget`` seconds."""
    deadline = time.monotonic() + budget
    with contextlib.suppress(OSError):  # an unwritable cache only costs speed (_store)
        cache_dir.mkdir(parents=True, exist_ok=True)
    out: list[Head] = []
    for path in paths:
        raw = path.read_bytes()
        sha = hashlib.sha256(raw).hexdigest()
        marker = cache_dir / f"{hashlib.sha256(f'{CACHE_FORMAT}|{__version__}|{sha}'.encode()).hexdigest()}.json"
        cached = _cached(marker, path, sha)
        if cached is not None:
            out.append(cached)
            continue
        if time.monotonic() < deadline:
            head = _full(path, sha)
            _store(marker, head)
        else:
            head = _unchecked(path, raw, sha)
        out.append(head)
    return out


def _full(path: Path, sha: str) -> Head:
    from hms.protocol import load

    try:
        p = load(path)
    except HmsError as e:
        return BrokenFile(path, sha, str(e))
    return head_of(p, path, sha)


def head_of(p: Protocol, path: Path, sha: str = "") -> ProtocolHead:
    """A loaded (so validated) protocol's head."""
    m = p.data["metadata"]
    return ProtocolHead(path, sha, p.id, p.version, p.title, p.author, p.authority, str(m["effective_at"]), True)


def _unchecked(path: Path, raw: bytes, sha: str) -> Head:
    """The head through libyaml (JSON is YAML), no schema: the build step validates the file in full."""
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(raw, Loader=loader)  # a safe loader: plain data only
        m = data["metadata"]
        return ProtocolHead(
            path,
            sha,
            str(m["id"]),
            int(m["version"]),
            str(m.get("title", m["id"])),
            str(m.get("author", "")),
            m.get("authority"),
            str(m["effective_at"]),
            False,
        )
    except Exception as e:  # any shape at all: this file is not checked yet, and cannot even be shown
        return BrokenFile(path, sha, f"{path}: cannot read its metadata ({type(e).__name__}: {e})")


def _cached(marker: Path, path: Path, sha: str) -> Head | None:
    try:
        d: dict[str, Any] = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if d.get("sha256") != sha:
        return None
    if "message" in d:
        return BrokenFile(path, sha, d["message"])
    return ProtocolHead(
        path, sha, d["id"], d["version"], d["title"], d["author"], d["authority"], d["effective_at"], True
    )


def _store(marker: Path, head: Head) -> None:
    d = asdict(head)
    d.pop("path")
    d.pop("checked", None)
    tmp = marker.with_suffix(f".{time.monotonic_ns()}.tmp")
    try:
        tmp.write_text(json.dumps(d))
        tmp.replace(marker)  # atomic: two dag-processors never read half a file
    except OSError:  # an unwritable cache only costs speed
        with contextlib.suppress(OSError):
            tmp.unlink()


__all__ = ["BrokenFile", "Head", "ProtocolHead", "head_of", "read_heads"]

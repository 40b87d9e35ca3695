"""Reproducible policy bundles: pack, safe read, verify.

A bundle is a tar.gz holding ``manifest.json`` and ``protocol.json`` (canonical
JSON). Its sha256 is the protocol version's identity everywhere (approvals,
deployments, audit, decision responses), so packing must be byte-identical for
the same protocol on any machine, timezone or umask: sorted members, fixed
mtime/uid/gid/mode, no owner names, gzip header mtime 0 and no file name.
Reading never touches the file system and refuses anything but the two regular
members (absolute paths, ``..``, links, devices, oversize or extra members), and
checks every member against the manifest before the protocol is used.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hms import __version__
from hms.errors import BadInput
from hms.protocol import Protocol, canonical_json, from_data

FORMAT = "hms.bundle/v1"
MEMBERS = ("manifest.json", "protocol.json")
MAX_BUNDLE_BYTES = 5_000_000
MAX_MEMBER_BYTES = 2_000_000
MAX_UNPACKED_BYTES = 2 * MAX_MEMBER_BYTES + 64 * 1024


@dataclass(frozen=True)
class Bundle:
    """A verified bundle in memory."""

    sha256: str
    content: bytes
    manifest: dict[str, Any]
    protocol: Protocol

    @property
    def short(self) -> str:
        return self.sha256[:12]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_for(protocol: Protocol, protocol_bytes: bytes) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "id": protocol.id,
        "version": protocol.version,
        "title": protocol.title,
        "author": protocol.author,
        "effective_at": protocol.data["metadata"]["effective_at"],
        "tool": f"hms {__version__}",
        "files": {"protocol.json": sha256_hex(protocol_bytes)},
    }


def build(protocol: Protocol) -> bytes:
    """The bundle bytes for a protocol: a pure function of its normalized data."""
    body = protocol.canonical_json()
    members = {"manifest.json": canonical_json(manifest_for(protocol, body)), "protocol.json": body}
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(members):
            data = members[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    gz_buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz_buf, compresslevel=9, mtime=0) as gz:
        gz.write(tar_buf.getvalue())
    return gz_buf.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temp file + rename so a crash never leaves a half-written bundle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _gunzip(raw: bytes, where: str) -> bytes:
    """Decompress with a hard cap: a gzip bomb stops at MAX_UNPACKED_BYTES."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(raw, MAX_UNPACKED_BYTES + 1)
    except zlib.error as e:
        raise BadInput(f"not a valid gzip archive ({e})", where=where) from None
    if len(out) > MAX_UNPACKED_BYTES or d.unconsumed_tail:
        raise BadInput(f"archive unpacks to more than {MAX_UNPACKED_BYTES} bytes", where=where)
    if not d.eof:
        raise BadInput("archive is truncated", where=where)
    if d.unused_data.strip(b"\0"):
        raise BadInput("unexpected bytes after the gzip stream", where=where)
    return out


def read_bytes(raw: bytes, where: str = "<bundle>", expect_sha256: str | None = None) -> Bundle:
    """Verify and load bundle bytes. ``expect_sha256`` guards against a swapped bundle."""
    digest = sha256_hex(raw)
    if expect_sha256 is not None and digest != expect_sha256:
        raise BadInput(f"bundle hash is {digest}, expected {expect_sha256} (swapped or altered)", where=where)
    if len(raw) > MAX_BUNDLE_BYTES:
        raise BadInput(f"bundle is larger than {MAX_BUNDLE_BYTES} bytes", where=where)
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(_gunzip(raw, where)), mode="r:") as tar:
            for m in tar:
                name = m.name
                if name.startswith("/") or Path(name).is_absolute():
                    raise BadInput(f"member {name!r} has an absolute path", where=where)
                if ".." in Path(name).parts:
                    raise BadInput(f"member {name!r} escapes the bundle ('..')", where=where)
                if m.issym() or m.islnk():
                    raise BadInput(f"member {name!r} is a link", where=where)
                if m.isdev() or m.isfifo():
                    raise BadInput(f"member {name!r} is a device or fifo", where=where)
                if not m.isfile():
                    raise BadInput(f"member {name!r} is not a regular file", where=where)
                if name not in MEMBERS:
                    raise BadInput(f"unexpected member {name!r} (a bundle holds {', '.join(MEMBERS)})", where=where)
                if name in files:
                    raise BadInput(f"member {name!r} appears twice", where=where)
                if m.size > MAX_MEMBER_BYTES:
                    raise BadInput(f"member {name!r} is {m.size} bytes; the limit is {MAX_MEMBER_BYTES}", where=where)
                f = tar.extractfile(m)
                assert f is not None
                files[name] = f.read()
    except tarfile.TarError as e:
        raise BadInput(f"not a valid tar archive ({e})", where=where) from None
    missing = [n for n in MEMBERS if n not in files]
    if missing:
        raise BadInput(f"missing member {missing[0]!r}", where=where)
    try:
        manifest = json.loads(files["manifest.json"])
        data = json.loads(files["protocol.json"])
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise BadInput(f"member is not valid JSON ({e})", where=where) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BadInput(f"manifest format is not {FORMAT}", where=f"{where}: manifest.json")
    recorded = (manifest.get("files") or {}).get("protocol.json")
    actual = sha256_hex(files["protocol.json"])
    if recorded != actual:
        raise BadInput(
            f"protocol.json sha256 {actual} does not match the manifest ({recorded}): altered after packing",
            where=f"{where}: manifest.json",
        )
    protocol = from_data(data, source=f"{where}: protocol.json")
    if manifest.get("id") != protocol.id or manifest.get("version") != protocol.version:
        raise BadInput("manifest id/version do not match the protocol", where=f"{where}: manifest.json")
    return Bundle(digest, raw, manifest, protocol)


def read(path: str | Path, expect_sha256: str | None = None) -> Bundle:
    p = Path(path)
    try:
        if p.is_symlink() or not p.is_file():
            raise BadInput("not a regular file", where=str(p))
        if p.stat().st_size > MAX_BUNDLE_BYTES:
            raise BadInput(f"bundle is larger than {MAX_BUNDLE_BYTES} bytes", where=str(p))
        raw = p.read_bytes()
    except OSError as e:
        raise BadInput(f"cannot read bundle: {e.strerror}", where=str(p)) from None
    return read_bytes(raw, str(p), expect_sha256)

"""Reproducible policy bundles: pack, safe read, verify.

A bundle is a tar.gz holding ``manifest.json`` and ``protocol.json`` (canonical
JSON). Its sha256 is the protocol version's identity everywhere (approvals,
deployments, audit, decision responses), so packing must be byte-identical for
the same protocol on any machine, timezone or umask: sorted members, fixed
mtime/uid/gid/mode, no owner names, gzip header mtime 0 and no file name.
Reading never touches the file system and refuses anything but the two regular
members (absolute paths, ``..``, links, devices, oversize or extra members), and
checks every member against the manifest before the protocol is used.

A bundle is valid only if it is canonical: its bytes are exactly what ``build`` makes
of the protocol inside it (under the ``tool`` its manifest names). So one sha256 means
one reading: a protocol.json with a duplicate key (raw bytes saying one payment, the
parser using another), a manifest whose title, author or effective time disagree with
the protocol, bytes after the end of the tar or of the gzip stream, another member
order or header — each is refused naming what differs, wherever a bundle is read
(``hms policy verify``, push, the registry's reads, the decision service).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hms import __version__
from hms.errors import BadInput, shown
from hms.protocol import Protocol, canonical_json, from_data
from hms.yamlsafe import load_json

FORMAT = "hms.bundle/v1"
MEMBERS = ("manifest.json", "protocol.json")
MAX_BUNDLE_BYTES = 5_000_000
MAX_MEMBER_BYTES = 2_000_000
MAX_UNPACKED_BYTES = 2 * MAX_MEMBER_BYTES + 64 * 1024
TOOL = f"hms {__version__}"
_TOOL = re.compile(r"hms [0-9A-Za-z.+-]{1,32}")  # the packer a manifest may name (its bytes are rebuilt with it)


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


def manifest_for(protocol: Protocol, protocol_bytes: bytes, tool: str = TOOL) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "id": protocol.id,
        "version": protocol.version,
        "title": protocol.title,
        "author": protocol.author,
        "effective_at": protocol.data["metadata"]["effective_at"],
        "tool": tool,
        "files": {"protocol.json": sha256_hex(protocol_bytes)},
    }


def build(protocol: Protocol, tool: str = TOOL) -> bytes:
    """The bundle bytes for a protocol: a pure function of its normalized data (and the packer's name)."""
    return _gzip(_tar(_members(protocol, tool)))


def _members(protocol: Protocol, tool: str) -> dict[str, bytes]:
    body = protocol.canonical_json()
    return {"manifest.json": canonical_json(manifest_for(protocol, body, tool)), "protocol.json": body}


def _tar(members: dict[str, bytes]) -> bytes:
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
    return tar_buf.getvalue()


def _gzip(tar: bytes) -> bytes:
    gz_buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz_buf, compresslevel=9, mtime=0) as gz:
        gz.write(tar)
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
    if d.unused_data:  # NUL padding too: a bundle is exactly what `hms policy pack` wrote
        raise BadInput(f"{_bytes(len(d.unused_data))} unexpected after the gzip stream", where=where)
    return out


def read_bytes(raw: bytes, where: str = "<bundle>", expect_sha256: str | None = None) -> Bundle:
    """Verify and load bundle bytes. ``expect_sha256`` guards against a swapped bundle."""
    digest = sha256_hex(raw)
    if expect_sha256 is not None and digest != expect_sha256:
        raise BadInput(f"bundle hash is {digest}, expected {expect_sha256} (swapped or altered)", where=where)
    if len(raw) > MAX_BUNDLE_BYTES:
        raise BadInput(f"bundle is larger than {MAX_BUNDLE_BYTES} bytes", where=where)
    files: dict[str, bytes] = {}
    tar_bytes = _gunzip(raw, where)
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
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
    manifest = _json_member(files, "manifest.json", where)
    data = _json_member(files, "protocol.json", where)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BadInput(f"manifest format is not {FORMAT}", where=f"{where}: manifest.json")
    files_ = manifest.get("files")
    recorded = files_.get("protocol.json") if isinstance(files_, dict) else None
    actual = sha256_hex(files["protocol.json"])
    if recorded != actual:
        raise BadInput(
            f"protocol.json sha256 {actual} does not match the manifest ({shown(recorded)}): altered after packing",
            where=f"{where}: manifest.json",
        )
    protocol = from_data(data, source=f"{where}: protocol.json")
    if manifest.get("id") != protocol.id or manifest.get("version") != protocol.version:
        raise BadInput("manifest id/version do not match the protocol", where=f"{where}: manifest.json")
    _check_canonical(raw, tar_bytes, files, manifest, protocol, where)
    return Bundle(digest, raw, manifest, protocol)


def _json_member(files: dict[str, bytes], name: str, where: str) -> Any:
    """A member parsed strictly: UTF-8, no duplicate keys, bounded depth and numbers (hms.yamlsafe.load_json)."""
    try:
        text = files[name].decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadInput(f"not UTF-8 (byte {e.start})", where=f"{where}: {name}") from None
    return load_json(text, f"{where}: {name}")


def _check_canonical(
    raw: bytes, tar_bytes: bytes, files: dict[str, bytes], manifest: dict[str, Any], protocol: Protocol, where: str
) -> None:
    """Refuse a bundle whose bytes are not those ``build`` makes of its own protocol, naming the first difference."""
    tool = manifest.get("tool")
    if not isinstance(tool, str) or not _TOOL.fullmatch(tool):
        raise BadInput(f"manifest field 'tool' is {shown(tool)}, not 'hms <version>'", where=f"{where}: manifest.json")
    members = _members(protocol, tool)
    if raw == _gzip(_tar(members)):
        return
    body = members["protocol.json"]
    if files["protocol.json"] != body:
        raise BadInput(
            f"protocol.json is not the canonical JSON of its protocol (sorted keys, no spaces; first difference at "
            f"byte {_first_difference(files['protocol.json'], body)}): pack it with `hms policy pack`",
            where=f"{where}: protocol.json",
        )
    expected = manifest_for(protocol, body, tool)
    for key in sorted(set(expected) | set(manifest)):
        if key not in expected:
            raise BadInput(f"manifest field {shown(key)} is not one `hms policy pack` writes",
                           where=f"{where}: manifest.json")
        if manifest.get(key) != expected[key] or type(manifest.get(key)) is not type(expected[key]):
            raise BadInput(
                f"manifest field {key!r} is {shown(manifest.get(key))} but the protocol says {shown(expected[key])}",
                where=f"{where}: manifest.json",
            )
    if files["manifest.json"] != members["manifest.json"]:
        raise BadInput("manifest.json is not canonical JSON (sorted keys, no spaces)", where=f"{where}: manifest.json")
    tar_expected = _tar(members)
    if tar_bytes != tar_expected:
        raise BadInput(_tar_difference(tar_bytes, tar_expected, members), where=where)
    raise BadInput("the gzip stream is not the one `hms policy pack` writes (header or compression differ)",
                   where=where)


def _bytes(n: int) -> str:
    return f"{n} byte" if n == 1 else f"{n} bytes"


def _first_difference(a: bytes, b: bytes) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def _tar_difference(actual: bytes, expected: bytes, members: dict[str, bytes]) -> str:
    if actual.startswith(expected):
        return f"{_bytes(len(actual) - len(expected))} after the end of the tar archive"
    at = _first_difference(actual, expected)
    part, offset = "the end-of-archive blocks", 0
    for name in sorted(members):
        size = 512 + -(-len(members[name]) // 512) * 512
        if at < offset + 512:
            part = f"the header of {name}"
            break
        if at < offset + size:
            part = f"the content of {name}"
            break
        offset += size
    return (f"the tar archive is not the one `hms policy pack` writes: it differs at byte {at}, in {part} "
            "(member order, header fields or padding)")


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

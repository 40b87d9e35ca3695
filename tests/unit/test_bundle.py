"""Bundles: byte-identical packing anywhere, and a reader that refuses hostile archives."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hms import bundle, protocol
from hms.errors import BadInput
from tests.conftest import CHIP, ROOT, WILDFIRE

BAD = ROOT / "tests" / "data" / "bad"

PACK = (
    "import sys; from hms import bundle, protocol; "
    "sys.stdout.write(bundle.sha256_hex(bundle.build(protocol.load(sys.argv[1]))))"
)


def pack_in_process(path: Path, tz: str, umask: int, locale: str) -> str:
    env = {**os.environ, "TZ": tz, "LC_ALL": locale, "PYTHONHASHSEED": str(umask)}
    cmd = f"umask {umask:03o}; exec {sys.executable} -c '{PACK}' {path}"
    return subprocess.run(["bash", "-c", cmd], env=env, capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("path", [WILDFIRE, CHIP], ids=["wildfire", "chip"])
def test_packing_is_byte_identical_across_timezones_umasks_and_hash_seeds(path):
    digests = {
        pack_in_process(path, "UTC", 0o022, "C"),
        pack_in_process(path, "Pacific/Kiritimati", 0o077, "C.UTF-8"),
        pack_in_process(path, "America/St_Johns", 0o000, "C"),
    }
    assert len(digests) == 1


def test_bundle_layout_is_fixed(tmp_path):
    import tarfile

    raw = bundle.build(protocol.load(WILDFIRE))
    assert raw[4:8] == b"\0\0\0\0"  # gzip header mtime 0
    out = tmp_path / "pkg.tgz"
    bundle.write_atomic(out, raw)
    with tarfile.open(out) as t:
        members = t.getmembers()
    assert [m.name for m in members] == ["manifest.json", "protocol.json"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(0, 0, 0, "", "", 0o644)}


def test_bundle_round_trips_and_is_identified_by_its_sha256():
    raw = bundle.build(protocol.load(WILDFIRE))
    b = bundle.read_bytes(raw)
    assert b.sha256 == hashlib.sha256(raw).hexdigest()
    assert b.protocol.canonical_json() == protocol.load(WILDFIRE).canonical_json()
    assert b.manifest["files"]["protocol.json"] == hashlib.sha256(b.protocol.canonical_json()).hexdigest()


def test_changing_one_parameter_changes_the_hash(tmp_path):
    p = tmp_path / "w.yml"
    p.write_text(WILDFIRE.read_text().replace("max_payment: 5000", "max_payment: 5001"))
    assert bundle.build(protocol.load(p)) != bundle.build(protocol.load(WILDFIRE))


def test_expected_hash_mismatch_is_refused():
    raw = bundle.build(protocol.load(WILDFIRE))
    with pytest.raises(BadInput, match="swapped or altered"):
        bundle.read_bytes(raw, expect_sha256="0" * 64)


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("traversal.tgz", "escapes the bundle"),
        ("absolute.tgz", "absolute path"),
        ("symlink.tgz", "is a link"),
        ("hardlink.tgz", "is a link"),
        ("device.tgz", "device"),
        ("extra-member.tgz", "unexpected member 'run.sh'"),
        ("altered-after-packing.tgz", "altered after packing"),
        ("corrupted-bytes.tgz", "not a valid gzip"),
        # Not canonical (issue 16): each was accepted before; a bundle is exactly what `hms policy pack` writes.
        ("duplicate-rules-key.tgz", r"protocol\.json:1: duplicate key 'rules' in \$"),
        ("manifest-disagrees.tgz", "manifest field 'author' is 'mallory' but the protocol says 'drafting-office'"),
        ("trailing-bytes.tgz", "511 bytes after the end of the tar archive"),
        ("gzip-padding.tgz", "512 bytes unexpected after the gzip stream"),
        ("reordered-members.tgz", "differs at byte 0, in the header of manifest.json"),
        ("non-canonical-json.tgz", "not the canonical JSON of its protocol"),
    ],
)
def test_hostile_bundles_are_refused(name, says):
    with pytest.raises(BadInput, match=says) as e:
        bundle.read(BAD / name)
    assert name in str(e.value)


def test_gzip_bomb_stops_at_the_cap(tmp_path):
    import gzip

    bomb = gzip.compress(b"\0" * (bundle.MAX_UNPACKED_BYTES + 10_000_000), mtime=0)
    with pytest.raises(BadInput, match="unpacks to more than"):
        bundle.read_bytes(bomb)


def test_a_symlink_given_as_the_bundle_path_is_refused(tmp_path):
    real = tmp_path / "real.tgz"
    real.write_bytes(bundle.build(protocol.load(WILDFIRE)))
    link = tmp_path / "link.tgz"
    link.symlink_to(real)
    with pytest.raises(BadInput, match="not a regular file"):
        bundle.read(link)


def test_write_atomic_leaves_no_partial_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "pkg.tgz"

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        bundle.write_atomic(target, b"x" * 1000)
    assert list(tmp_path.iterdir()) == []


def _repacked(manifest_edit=None, tar_edit=None) -> bytes:
    """The wildfire bundle rebuilt with its manifest (parsed) or its tar bytes changed."""
    import gzip
    import json

    proto = protocol.load(WILDFIRE)
    members = bundle._members(proto, bundle.TOOL)
    if manifest_edit:
        m = json.loads(members["manifest.json"])
        manifest_edit(m)
        members["manifest.json"] = protocol.canonical_json(m)
    tar = bundle._tar(members)
    return gzip.compress(tar_edit(tar) if tar_edit else tar, mtime=0)


@pytest.mark.parametrize(("edit", "says"), [
    (lambda m: m.update(title="Another title"), "manifest field 'title' is 'Another title' but the protocol says"),
    (lambda m: m.update(effective_at="2026-12-01T05:00:00Z"), "manifest field 'effective_at'"),
    (lambda m: m.update(version=True), "manifest id/version do not match"),
    (lambda m: m.update(signed_by="ops"), "manifest field 'signed_by' is not one `hms policy pack` writes"),
    (lambda m: m.update(tool="make"), "manifest field 'tool' is 'make', not 'hms <version>'"),
])
def test_a_manifest_that_disagrees_with_its_protocol_is_refused_naming_the_field(edit, says):
    with pytest.raises(BadInput, match=re.escape(says)):
        bundle.read_bytes(_repacked(manifest_edit=edit), "b.tgz")


def test_a_bundle_packed_by_another_hms_version_stays_valid():
    raw = bundle.build(protocol.load(WILDFIRE), tool="hms 0.0.9")
    assert raw != bundle.build(protocol.load(WILDFIRE))
    assert bundle.read_bytes(raw).manifest["tool"] == "hms 0.0.9"


def test_the_bundle_pack_writes_reads_back_as_canonical_and_one_byte_more_does_not():
    raw = bundle.build(protocol.load(CHIP))
    assert bundle.read_bytes(raw).sha256 == bundle.sha256_hex(raw)
    with pytest.raises(BadInput, match="1 byte after the end of the tar archive"):
        bundle.read_bytes(_repacked(tar_edit=lambda tar: tar + b"\0"), "b.tgz")

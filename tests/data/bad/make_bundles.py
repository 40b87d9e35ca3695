"""Regenerate the hostile bundles and generated protocol files in this folder: `python tests/data/bad/make_bundles.py`.

Each bundle is a tar.gz that a careless unpacker would accept; each protocol file broke the
parser once (a traceback, a hang or a silent merge). They are committed so the tests read fixed
bytes; this script documents exactly how each was built. Cases over 100 KB are not committed:
``large_protocols()`` builds them and the tests write them to a temporary folder.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def tgz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in members:
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(buf.getvalue(), mtime=0)


def reg(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def special(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def canonical(data: object) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def protocol_files() -> dict[str, str]:
    """The hostile protocol files (small enough to commit), each a sample protocol with one change."""
    wildfire = (ROOT / "include/protocols/wildfire-aid-2024.yml").read_text()
    chip = (ROOT / "include/protocols/chip-income-cap.yml").read_text()
    data = json.loads(canonical(_load(wildfire)))

    def with_param(value: str) -> str:
        return wildfire.replace("  max_payment: 5000\n", f"  max_payment: {value}\n", 1)

    deep = dict(data, parameters={**data["parameters"], "max_payment": "@"})
    deep_json = json.dumps(deep, indent=1).replace('"@"', "[" * 900 + "]" * 900)  # a RecursionError at 600+
    duplicate = json.dumps(data, indent=1).replace(
        '"rules": {', '"rules": {"amount": "9000 if eligible else 0"},\n "rules": {', 1
    )  # json keeps the last "rules": a reader of the file sees the first
    return {
        "deep-json.json": deep_json,
        "deep-yaml.yml": with_param("[" * 10_000 + "]" * 10_000),  # 23 KB: 30 s of PyYAML, then RecursionError
        "deep-yaml-block.yml": with_param("\n" + "  " + "- " * 10_000 + "1"),  # block sequences, one line
        "huge-number.yml": with_param("9" * 5000),  # int() refuses over 4300 digits: ValueError
        "big-exponent.yml": with_param(str(10**400)),  # float() of it: OverflowError
        "colliding-table-keys.yml": chip.replace("fpl: {1: 15060,", 'fpl: {"1": 15060, "01": 99999,', 1),
        "duplicate-key.json": duplicate,
    }


def large_protocols() -> dict[str, str]:
    """Hostile protocol files too large to commit (the tests write them to a temporary folder)."""
    chip = json.loads(canonical(_load((ROOT / "include/protocols/chip-income-cap.yml").read_text())))
    huge = dict(chip, parameters={**chip["parameters"], "fpl": {str(i): 1 for i in range(80_000)}})
    wildfire = (ROOT / "include/protocols/wildfire-aid-2024.yml").read_text()
    # The worst place for the nesting is the end of the largest file allowed, after as many tokens as it holds.
    tokens = dict(chip, padding=[list(range(100))] * 2_400)  # 0.95 MB, 480k tokens
    flow_lines = "padding:\n" + "  - {name: case, input: {a: 1, b: [2, 3]}, expect: {ok: true}}\n" * 3_500  # 0.2 MB
    return {
        "huge-table-error.json": json.dumps(huge, separators=(",", ":")),  # 80k keys: the error echoed 949 KB
        "deep-at-the-end-1mb.json": _deep_at_the_end(json.dumps(tokens), 2_000),
        "deep-at-the-end.yml": flow_lines + wildfire.replace(
            "  max_payment: 5000\n", "  max_payment: " + "[" * 10_000 + "]" * 10_000 + "\n"
        ),
    }


def _deep_at_the_end(text: str, depth: int) -> str:
    return text[:-1] + ', "z": ' + "[" * depth + "]" * depth + "}"


def _load(text: str) -> object:
    from hms.yamlsafe import load_text

    return load_text(text, "sample.yml").data


def main() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "src"))
    from hms import bundle, protocol

    good = bundle.build(protocol.load(ROOT / "include/protocols/wildfire-aid-2024.yml"))
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(good))) as t:
        files = {m.name: t.extractfile(m).read() for m in t}
    manifest, proto = files["manifest.json"], files["protocol.json"]

    out = {
        "traversal.tgz": tgz([reg("manifest.json", manifest), reg("../protocol.json", proto)]),
        "absolute.tgz": tgz([reg("manifest.json", manifest), reg("/etc/protocol.json", proto)]),
        "symlink.tgz": tgz([reg("manifest.json", manifest), special("protocol.json", tarfile.SYMTYPE, "/etc/passwd")]),
        "hardlink.tgz": tgz(
            [reg("manifest.json", manifest), special("protocol.json", tarfile.LNKTYPE, "manifest.json")]
        ),
        "device.tgz": tgz([reg("manifest.json", manifest), special("protocol.json", tarfile.CHRTYPE)]),
        "extra-member.tgz": tgz([reg("manifest.json", manifest), reg("protocol.json", proto), reg("run.sh", b"id\n")]),
    }
    data = json.loads(proto)
    data["parameters"]["max_payment"] = 50000  # the "altered after packing" case: manifest hash no longer matches
    altered = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    out["altered-after-packing.tgz"] = tgz([reg("manifest.json", manifest), reg("protocol.json", altered)])
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0xFF
    out["corrupted-bytes.tgz"] = bytes(flipped)

    # Canonical form (issue 16): each below verified on main; the bytes are not what `hms policy pack` writes.
    def signed(manifest_data: dict, body: bytes) -> bytes:  # the manifest names the member's true hash
        return canonical({**manifest_data, "files": {"protocol.json": hashlib.sha256(body).hexdigest()}})

    man = json.loads(manifest)
    dup_rules = {**data["rules"], "amount": "9000 if eligible else 0"}  # the parser keeps the last "rules"
    rules = b'"rules":' + canonical(data["rules"])
    assert rules in proto
    dup = proto.replace(rules, rules + b',"rules":' + canonical(dup_rules), 1)  # a reader sees the first
    out["duplicate-rules-key.tgz"] = tgz([reg("manifest.json", signed(man, dup)), reg("protocol.json", dup)])
    disagrees = {**man, "title": "Wildfire relief payment (doubled)", "author": "mallory",
                 "effective_at": "2026-01-01T00:00:00-05:00"}
    out["manifest-disagrees.tgz"] = tgz([reg("manifest.json", canonical(disagrees)), reg("protocol.json", proto)])
    out["trailing-bytes.tgz"] = gzip.compress(gzip.decompress(good) + b"#!/bin/sh\nid\n" + b"\0" * 498, mtime=0)
    out["gzip-padding.tgz"] = good + b"\0" * 512
    out["reordered-members.tgz"] = tgz([reg("protocol.json", proto), reg("manifest.json", manifest)])
    pretty = json.dumps(data, indent=2).encode()
    out["non-canonical-json.tgz"] = tgz([reg("manifest.json", signed(man, pretty)), reg("protocol.json", pretty)])
    for name, raw in out.items():
        (HERE / name).write_bytes(raw)
        print(name, len(raw))
    for name, text in protocol_files().items():
        (HERE / name).write_text(text)
        print(name, len(text.encode()))


if __name__ == "__main__":
    main()

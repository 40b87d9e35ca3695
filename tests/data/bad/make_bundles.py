"""Regenerate the hostile bundles in this folder: `python tests/data/bad/make_bundles.py`.

Each is a tar.gz that a careless unpacker would accept. They are committed so the
tests read fixed bytes; this script documents exactly how each was built.
"""

from __future__ import annotations

import gzip
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
    for name, raw in out.items():
        (HERE / name).write_bytes(raw)
        print(name, len(raw))


if __name__ == "__main__":
    main()

"""``make demo``: the main job end to end on this machine, printed in the seed's one-line-per-stage style.

It grows with the product: today it packs, tests and simulates both sample protocols,
then verifies the audit chain. Exit code is the first failing stage's.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hms.cli import main as hms

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "out"


def run() -> int:
    OUT.mkdir(exist_ok=True)
    for proto in sorted((ROOT / "include" / "protocols").glob("*.yml")):
        pkg = OUT / f"{proto.stem}.tgz"
        print(f"[build] 📦 {proto.relative_to(ROOT)}", flush=True)
        for step in (["policy", "pack", str(proto), "--out", str(pkg)], ["policy", "test", str(pkg)]):
            rc = hms(step)
            if rc:
                return rc
    return hms(["audit", "verify"])


if __name__ == "__main__":
    sys.exit(run())

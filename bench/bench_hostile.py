"""Hostile input (issue 16): how fast the pre-scan refuses deep files, and what canonical bundles cost to read.

On main a 23 KB YAML file nested 10,000 levels took 30 s of CPU before a RecursionError; the pre-scan
(hms.prescan) reads text once without recursion. The worst place for the nesting is the end of the
largest file allowed: the scan reads all of it first. Reading a bundle now also rebuilds it
(hms.bundle: valid only if canonical), so its cost is measured too.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bench.table import Row
from bench.timing import best_of
from hms import bundle, prescan, protocol
from hms.errors import BadInput
from hms.yamlsafe import MAX_ALIASES, MAX_DEPTH, MAX_FILE_BYTES

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "data" / "bad"


def _refusal(text: str, source: str) -> float:
    def load() -> None:
        try:
            protocol.loads(text, source)
        except BadInput:
            return
        raise AssertionError(f"{source} was not refused")

    return best_of(load, 3)


def run() -> list[Row]:
    spec = importlib.util.spec_from_file_location("make_bundles", BAD / "make_bundles.py")
    make = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(make)  # type: ignore[union-attr]
    large = make.large_protocols()
    deep_json = "[" * (MAX_FILE_BYTES // 2) + "]" * (MAX_FILE_BYTES // 2)
    line = "  - {name: case, input: {a: 1, b: 2}, expect: {ok: true}}\n"
    yaml_1mb = "tests:\n" + line * (MAX_FILE_BYTES // len(line))
    scan = best_of(lambda: prescan.scan_yaml(yaml_1mb, "b.yml", MAX_DEPTH, MAX_ALIASES), 3)
    raw = bundle.build(protocol.load(ROOT / "include" / "protocols" / "wildfire-aid-2024.yml"))
    read = best_of(lambda: bundle.read_bytes(raw), 10)
    rows = [
        ("refuse deep-yaml.yml (23 KB, 10,000 levels; main: 30 s)", _refusal((BAD / "deep-yaml.yml").read_text(),
                                                                             "deep-yaml.yml"), 0.1),
        ("refuse 1 MB JSON nested 500,000 levels", _refusal(deep_json, "deep.json"), 0.1),
        ("refuse 0.95 MB JSON nested at its end (480k tokens first)",
         _refusal(large["deep-at-the-end-1mb.json"], "end.json"), 0.5),
        ("refuse 0.24 MB YAML nested at its end (3,500 flow lines first)",
         _refusal(large["deep-at-the-end.yml"], "end.yml"), 0.5),
        ("refuse huge-table-error.json (80k keys, 0.8 MB)", _refusal(large["huge-table-error.json"], "t.json"), 0.5),
    ]
    out = [Row("hostile", what, f"{s * 1000:.1f} ms", f"< {target * 1000:.0f} ms", s < target)
           for what, s, target in rows]
    out.append(Row("hostile", "YAML pre-scan of 1 MB (flow lines)", f"{scan * 1000:.0f} ms", "< 1000 ms", scan < 1))
    out.append(Row("hostile", "read + verify the wildfire bundle (rebuilt: canonical)", f"{read * 1000:.1f} ms",
                   "< 50 ms", read < 0.05))
    return out

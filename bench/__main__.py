"""Run every ``bench/bench_*.py`` module's ``run()`` and print one table.

A benchmark module defines ``run() -> list[Row]``; each row names what was measured, the figure, the target
and whether the target was met. Targets live here, never in timed unit tests. Exit 1 when a target is missed,
so a regression is visible without reading the table. ``python -m bench NAME`` runs only the modules whose
name contains NAME.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from bench.table import Row, render


def main(argv: list[str]) -> int:
    names = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    rows: list[Row] = []
    for name in names:
        print(f"[bench] {name} …", file=sys.stderr, flush=True)
        rows.extend(importlib.import_module(f"bench.{name}").run())
    print(render(rows))
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

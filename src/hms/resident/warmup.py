"""What a spare child does before it is handed a command: the work a first run pays, paid in advance.

A child forked from the resident still pays, on its first simulation, for what the resident's imports did
not do: copying the pages it writes (reference counts on shared objects), faulting in fresh heap for the
arrays, starting Arrow's thread pool and the simulation's arenas — ~14k page faults and ~25 ms for a
million households, on a VM where a fault costs microseconds. A spare pays it while nobody waits: it
keeps its heap once grown (one arena, no trimming), grows it, and simulates a small protocol of its own
(not the caller's: it cannot know it) on a million households of its own, written beside the socket.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
from pathlib import Path

from hms.arrow_memory import M_ARENA_MAX, M_TOP_PAD, keep_freed_pages, mallopt

HEAP = 192 << 20  # grown once per spare, then reused by every array the run allocates (< 32 MiB each)
PIECE = 16 << 20
ROWS = 1 << 20  # a million households, the size most runs are: smaller, and a first run still faults its arrays in

WHY = "exercises the simulation before a caller waits"
PROTOCOL = {
    "apiVersion": "hms.policy/v1",
    "kind": "Protocol",
    "metadata": {"id": "resident-warmup", "version": 1, "title": "The resident simulator's warm-up",
                 "authority": "none: never deployed", "author": "hms", "effective_at": "2000-01-01T00:00:00Z"},
    "inputs": {
        "household_size": {"type": "integer", "minimum": 1, "maximum": 20, "data_class": "personal",
                           "purpose": WHY},
        "household_income": {"type": "number", "minimum": 0, "data_class": "personal", "purpose": WHY},
    },
    "parameters": {"limit_per_member": 20000, "per_member": 100},
    "rules": {"eligible": "household_income <= limit_per_member * household_size",
              "amount": "per_member * household_size if eligible else 0"},
    "outputs": ["eligible", "amount"],
    "budget": {"cap": 1.0e12, "population": "synthetic:1000", "currency": "USD"},
    "approvals": {"required": 2, "roles": ["legal", "budget"]},
    "tests": [{"name": "one member under the limit", "input": {"household_size": 1, "household_income": 100},
               "expect": {"eligible": True, "amount": 100}}],
}


def keep_heap() -> None:
    """One arena whose freed memory is kept (hms.arrow_memory), grown to ``HEAP`` now: the run's arrays then
    land on pages that are already this process's own."""
    keep_freed_pages()
    if not (mallopt(M_ARENA_MAX, 1) and mallopt(M_TOP_PAD, 16 << 20)):
        return  # not glibc: nothing would keep the heap grown
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    pieces = [libc.malloc(PIECE) for _ in range(HEAP // PIECE)]
    for p in pieces:
        if p:
            ctypes.memset(p, 0, PIECE)
    for p in pieces:
        libc.free(p)


def files(run_dir: Path) -> tuple[Path, Path]:
    """The warm-up's bundle and population beside the socket, written once (atomically) by the first spare."""
    from hms import bundle, protocol
    from hms.population import SyntheticSpec, synthetic

    pkg, pop = run_dir / "warmup.tgz", run_dir / f"warmup-{ROWS}.parquet"
    if not pkg.exists():
        bundle.write_atomic(pkg, bundle.build(protocol.from_data(PROTOCOL, "resident warm-up")))
    if not pop.exists():
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        p = synthetic(SyntheticSpec(n=ROWS, seed=1))
        columns = {"household_size": pa.array(p.columns["household_size"].astype(np.int8)),
                   "household_income": pa.array(p.columns["household_income"].astype(np.int32)),
                   "weight": pa.array(np.ones(ROWS, dtype=np.int16))}
        for name, attr in p.attributes.items():  # categorical columns as a microdata file stores them
            columns[name] = pa.DictionaryArray.from_arrays(attr.codes.astype(np.int8), pa.array(attr.labels))
        tmp = pop.with_suffix(f".{os.getpid()}.part")
        pq.write_table(pa.table(columns), tmp)
        tmp.replace(pop)
    return pkg, pop


def warm(run_dir: Path) -> None:
    from hms.cli import _dispatch, build_parser

    keep_heap()
    pkg, pop = files(run_dir)
    argv = ["policy", "simulate", str(pkg), "--population", str(pop), "--baseline", "none", "--json"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        _dispatch(build_parser(["hms.cli.policy"]), argv)

"""Population files read in record batches, so memory follows the batch and not the file.

A national microdata file (130M households) does not fit in memory as NumPy columns; the simulation
never needs it to. ``PopulationFile`` reads only the columns a run needs (the rules' inputs, the weight,
the demographic attributes, and the income and size columns when the breakdowns are drawn), a batch
at a time, in a reader thread so that decoding (pyarrow, which releases the GIL) overlaps the rule
evaluation of the batch before. Each batch becomes a ``Chunk``: the same shape an in-memory
``Population`` yields (``Population.chunks``), so ``hms.simulate`` has one loop for both.

Attribute columns arrive dictionary-encoded (codes and the labels of that batch): a batch's labels may
differ from the next one's, and the simulation maps them onto one set of groups.

The weighted income decile cut points need the whole file before the first row can be given a decile,
so ``decile_edges`` reads the income and weight columns twice (an exact two-pass radix selection over
the float's ordered bits) in bounded memory, and finds exactly the cut points an in-memory sort finds.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hms.arrow_memory import keep_freed_pages
from hms.errors import BadInput

keep_freed_pages()  # before any pyarrow import: a file's batches reuse the pages the last one freed

BATCH_ROWS = 1 << 20
_RADIX_BITS = 20  # the first pass's histogram: 2**20 bins of the ordered float bits (8 MiB of weights)
_QUEUE_DEPTH = 2  # batches decoded ahead of the evaluation: enough to overlap, bounded memory


@dataclass(frozen=True)
class Chunk:
    """Rows [start, start + n) of a population: the requested columns, weights and attribute codes."""

    start: int
    columns: Mapping[str, np.ndarray]
    weight: np.ndarray
    integral: bool  # every weight of the chunk is a whole number (exact integer money totals)
    attributes: Mapping[str, tuple[np.ndarray, tuple[str, ...]]]  # name -> (codes, labels of this chunk)
    validated: bool = False  # columns already checked against the rules' declarations (in-memory populations)

    @property
    def n(self) -> int:
        return len(self.weight)

    @property
    def stop(self) -> int:
        return self.start + self.n

    def split(self, rows: int) -> Iterator[Chunk]:
        """Views of ``rows`` rows each: a file's batch is read large (fewer, cheaper reads) and evaluated in
        cache-sized pieces (a 1M-row column is 8 MiB; the rule evaluation runs ~2x faster on 128k rows)."""
        if self.n <= rows:
            yield self
            return
        for lo in range(0, self.n, rows):
            hi = min(self.n, lo + rows)
            yield Chunk(
                self.start + lo,
                {k: v[lo:hi] for k, v in self.columns.items()},
                self.weight[lo:hi],
                self.integral,
                {k: (c[lo:hi], labels) for k, (c, labels) in self.attributes.items()},
                self.validated,
            )


def integral_weights(w: np.ndarray) -> bool:
    if len(w) == 0:
        return True
    if w.dtype.kind in "iu":  # whole numbers by type: only their size can make float64 sums inexact
        return w.dtype.itemsize < 7 or float(np.abs(w).max()) < 2**53
    return bool(np.all(w == np.floor(w)) and float(w.max()) < 2**53)


def check_weight(w: np.ndarray, where: str, first_row: int = 0) -> np.ndarray:
    """Weights as float64, refusing non-numbers, NaN, infinities and negatives with the row."""
    if w.dtype.kind not in "iuf" or w.dtype.kind == "b":
        raise BadInput(f"expected numbers, got {w.dtype}", where=where)
    checks = [] if w.dtype.kind == "u" else [(w < 0, "negative")]
    if w.dtype.kind == "f":
        checks.insert(0, (~np.isfinite(w), "not a finite number"))
    for bad, what in checks:
        if bad.any():
            r = int(np.argmax(bad))
            raise BadInput(f"row {first_row + r}: weight {float(w[r])!r} is {what}", where=where)
    return w.astype(np.float64, copy=False)


@dataclass
class PopulationFile:
    """A CSV or Parquet household file, evaluated in batches (``chunks``), never loaded whole."""

    source: str
    path: Path
    kind: str  # parquet | csv
    names: tuple[str, ...]  # the file's columns
    rows: int | None  # Parquet's footer says; a CSV file's is known only once read
    description: str = ""
    notes: list[str] = field(default_factory=list)
    provenance: dict[str, Any] | None = None
    # What an in-memory population has and a file never does (a file is observed data: nothing synthesized).
    synthesis_seed: None = None
    synthesized: tuple = ()
    persons: None = None
    attribute_names: tuple[str, ...] = ()
    dictionary_columns: tuple[str, ...] = ()  # a Parquet file's, as its footer types them
    string_columns: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return self.source

    def chunks(self, names: Collection[str], rows: int = BATCH_ROWS, *, attributes: bool = True) -> Iterator[Chunk]:
        """The file a batch at a time: ``names`` (those the file has) plus the weight and the attributes."""
        from hms.population import WEIGHT

        attribute_names = self.attribute_names if attributes else ()
        wanted = [n for n in self.names if n in set(names) and n != WEIGHT]
        read = list(dict.fromkeys([*wanted, *attribute_names, *([WEIGHT] if WEIGHT in self.names else [])]))
        def convert() -> Iterator[Chunk]:  # runs in the reader thread: decoding and conversion overlap evaluation
            start = 0
            for batch in self._batches(read, rows):
                n = batch.num_rows
                columns = {name: _numpy(batch.column(name), name, start, self.source) for name in wanted}
                attrs = {name: _codes(batch.column(name), name, start, self.source) for name in attribute_names}
                if WEIGHT in self.names:
                    raw = _numpy(batch.column(WEIGHT), WEIGHT, start, self.source)
                    weight = check_weight(raw, f"{self.source}: column {WEIGHT!r}", start)
                    integral = integral_weights(raw)
                else:
                    weight, integral = np.ones(n), True
                yield Chunk(start, columns, weight, integral, attrs)
                start += n

        yield from _prefetched(convert())

    def _batches(self, columns: list[str], rows: int) -> Iterator[Any]:
        import pyarrow as pa

        try:
            if self.kind == "parquet":
                import pyarrow.parquet as pq

                pf = pq.ParquetFile(self.path, memory_map=True, read_dictionary=self._as_dictionary(columns))
                meta = pf.metadata
                if all(meta.row_group(i).num_rows <= 4 * rows for i in range(meta.num_row_groups)):
                    for i in range(meta.num_row_groups):  # a row group a batch: no read split across two
                        yield from pf.read_row_group(i, columns=columns).to_batches(max_chunksize=None)
                else:  # a file written as a few huge row groups: read in slices of them
                    yield from pf.iter_batches(batch_size=rows, columns=columns, use_threads=True)
            else:
                import pyarrow.csv as pcsv

                reader = pcsv.open_csv(
                    self.path,
                    read_options=pcsv.ReadOptions(block_size=1 << 24),
                    convert_options=pcsv.ConvertOptions(include_columns=columns, strings_can_be_null=True),
                )
                yield from reader
        except (pa.ArrowException, OSError) as e:
            raise BadInput(f"not a readable {self.kind.upper() if self.kind == 'csv' else 'Parquet'} file ({e})",
                           where=self.source) from None

    def _as_dictionary(self, columns: list[str]) -> list[str]:
        """The columns Arrow should hand over as dictionary indices straight from the file's dictionary pages:
        the attributes (string or already dictionary-encoded) and any other dictionary column. As int32
        indices, the width Parquet decodes them to — a stored narrower type (int8) costs a checked cast per
        row, a quarter of the column's read."""
        return [n for n in columns if n in self.dictionary_columns
                or (n in self.string_columns and n in self.attribute_names)]

    def decile_edges(self, income: str) -> np.ndarray | None:
        """The nine weighted income cut points (``weighted_cut_points``), reading the income and weight
        columns twice; None when the file has no numeric income or a row lacks one (as in memory)."""
        if income not in self.names:
            return None

        def pieces() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            return ((ch.columns[income], ch.weight) for ch in self.chunks([income], attributes=False))

        try:
            return weighted_cut_points(pieces, self.rows)
        except BadInput:
            return None


def weighted_cut_points(
    pieces: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]], rows: int | None = None
) -> np.ndarray | None:
    """The nine weighted decile cut points ``min{v : W(x <= v) >= k/10 of the weight}``, k = 1..9, of values
    given as (values, weights) pieces by ``pieces()`` — called twice: the data is never held whole.

    Pass one histograms the weights by the top bits of each value's ordered bit pattern; the bins holding
    the nine targets are then read again, value by value (merged per piece, so a bin costs memory by its
    distinct values, not its rows). Exact: the cut points a sort of all the values finds, at a fraction of
    a sort's time (two linear passes). None when a value is not a finite number or the weight is 0.
    ``rows`` (when known) sizes the histogram: 2**16 bins up to a few million rows, 2**20 beyond.
    """
    bits = _RADIX_BITS if rows is None or rows > 4_000_000 else 16
    shift = np.uint64(64 - bits)
    hist = np.zeros(1 << bits)
    for values, weights in pieces():
        keys = _ordered_keys(values)
        if keys is None:
            return None
        hist += np.bincount((keys >> shift).astype(np.intp), weights=weights, minlength=1 << bits)
    cum = np.cumsum(hist)
    total = float(cum[-1])
    if total <= 0:
        return None
    targets = total * np.arange(1, 10) / 10
    bins = np.searchsorted(cum, targets, side="left")
    wanted = np.zeros(1 << bits, dtype=bool)
    wanted[bins] = True
    found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for values, weights in pieces():
        keys = _ordered_keys(values)
        assert keys is not None
        top = (keys >> shift).astype(np.intp)
        hit = wanted[top]
        top, keys, weights = top[hit], keys[hit], weights[hit]
        for b in np.unique(top).tolist():
            sel = top == b
            found[b] = _merge(found.get(b), keys[sel], weights[sel])
    edges = np.empty(9)
    for i, (b, target) in enumerate(zip(bins.tolist(), targets.tolist(), strict=True)):
        keys_b, w_b = found[b]
        below = float(cum[b - 1]) if b > 0 else 0.0
        j = int(np.searchsorted(below + np.cumsum(w_b), target, side="left"))
        edges[i] = _float_of(keys_b[min(j, len(keys_b) - 1)])
    return edges


def decile_of(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Each value's decile 0..9: how many cut points lie below it (``searchsorted(edges, values, "left")``),
    counted with nine comparisons, ~3x faster than a binary search per value."""
    x = values if values.dtype.kind == "f" else values.astype(np.float64)
    out = np.zeros(len(x), dtype=np.intp)
    for e in edges.tolist():
        out += x > e
    return out


def _merge(acc: tuple[np.ndarray, np.ndarray] | None, keys: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if acc is not None:
        keys, w = np.concatenate([acc[0], keys]), np.concatenate([acc[1], w])
    values, inverse = np.unique(keys, return_inverse=True)
    return values, np.bincount(inverse, weights=w, minlength=len(values))


def _ordered_keys(x: np.ndarray) -> np.ndarray | None:
    """float64 -> uint64 whose unsigned order is the floats' order (None if not all finite numbers)."""
    if x.dtype.kind not in "iuf" or x.dtype.kind == "b":
        return None
    f = np.ascontiguousarray(x, dtype=np.float64)
    if not np.isfinite(f).all():
        return None
    f = f + 0.0  # -0.0 -> 0.0: one key for one value
    bits = f.view(np.uint64)
    sign = np.uint64(1 << 63)
    return np.where(bits & sign, ~bits, bits | sign)


def _float_of(key: np.uint64) -> float:
    sign = np.uint64(1 << 63)
    k = np.uint64(key)
    bits = k ^ sign if k & sign else ~k
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


def _numpy(col: Any, name: str, start: int, source: str) -> np.ndarray:
    """One batch column as NumPy; a missing cell is refused with its row in the file."""
    import pyarrow as pa

    if col.null_count:
        raise BadInput(f"column {name!r}: row {start + _first_null(col)} is empty", where=source)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return np.asarray(col.to_pylist(), dtype=object)
    return col.to_numpy(zero_copy_only=False)


def _codes(col: Any, name: str, start: int, source: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """An attribute column as (codes, labels): dictionary-encoded by Arrow, never a Python string per row."""
    import pyarrow as pa

    if col.null_count:
        raise BadInput(f"column {name!r}: row {start + _first_null(col)} is empty", where=source)
    if not pa.types.is_dictionary(col.type):
        col = col.cast(pa.string()).dictionary_encode()
    labels = tuple(str(x) for x in col.dictionary.to_pylist())
    return col.indices.to_numpy(zero_copy_only=False), labels  # int8 codes as stored: widened once, when joined


def _first_null(col: Any) -> int:
    import pyarrow.compute as pc  # only when a cell is missing: the module costs ~30 ms to import

    return int(pc.index(pc.is_null(col), True).as_py())


def _prefetched(batches: Iterator[Any]) -> Iterator[Any]:
    """``batches`` produced by a reader thread, ``_QUEUE_DEPTH`` ahead; its exception re-raised here."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=_QUEUE_DEPTH)
    stop = threading.Event()

    def produce() -> None:
        try:
            for b in batches:
                while not stop.is_set():
                    try:
                        q.put(("batch", b), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as e:
            q.put(("error", e))

    t = threading.Thread(target=produce, name="hms-population-reader", daemon=True)
    t.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.05)


def open_file(path: Path, *, source: str | None = None, description: str = "") -> PopulationFile:
    """A household file to stream: its columns and row count, read from the footer or the header only."""
    import pyarrow as pa

    from hms.population import DEMOGRAPHICS

    where = source or str(path)
    if not path.is_file():
        raise BadInput("population file not found" if not path.exists() else "not a regular file", where=where)
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(path)
            names, rows, kind = tuple(meta.schema_arrow.names), meta.metadata.num_rows, "parquet"
            schema = meta.schema_arrow
            dictionaries = tuple(f.name for f in schema if pa.types.is_dictionary(f.type))
            strings = tuple(f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
        elif suffix == ".csv":
            import pyarrow.csv as pcsv

            reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=1 << 16))
            names, rows, kind = tuple(reader.schema.names), None, "csv"
            dictionaries = strings = ()
        else:
            raise BadInput(f"unknown population file type {suffix or '(none)'!r}; use .csv or .parquet", where=where)
    except (pa.ArrowException, OSError) as e:
        what = "Parquet" if suffix in (".parquet", ".pq") else "CSV"
        raise BadInput(f"not a readable {what} file ({e})", where=where) from None
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise BadInput(f"column {dup!r} appears twice", where=where)
    pop = PopulationFile(
        source=where,
        path=path,
        kind=kind,
        names=names,
        rows=rows,
        description=description or (f"{rows:,} rows" if rows is not None else "rows") + f" from {path.name}",
        attribute_names=tuple(n for n in DEMOGRAPHICS if n in names),
        dictionary_columns=dictionaries,
        string_columns=strings,
    )
    from hms.population import WEIGHT

    if WEIGHT not in names:
        pop.notes.append(f"no {WEIGHT!r} column: each row counts as one household")
    return pop

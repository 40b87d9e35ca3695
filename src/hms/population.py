"""Populations a simulation runs on: synthetic, CSV / Parquet files, and the named catalog.

A protocol's ``budget.population`` is a catalog name (include/populations/catalog.yml),
``synthetic:N[:SEED]`` or a file. Everything becomes a ``Population``: NumPy columns the
rules may read, demographic *attributes* kept apart as categorical codes (used only for
the fairness figures, never offered to the rules unless a rule declares them), and a
``weight`` per row (how many households a row stands for).

Validation happens here and in ``RuleSet.coerce_columns`` so every refusal names the
file and the column: a column the rules read that is missing, of the wrong type or
empty, and a weight that is negative, NaN or not a number all raise ``BadInput`` (exit 2).

Files: pyarrow (in the pinned set, via Airflow) reads Parquet and types CSV columns;
without it CSV still loads through the stdlib reader and Parquet is refused clearly.

The synthetic generator is deterministic for a given N, SEED and overrides (NumPy's
PCG64 ``Generator``) and vectorized end to end, so 1M households take a fraction of a
second. A column the rules read that the generator does not make (or makes in a shape the
declaration refuses) is synthesized from the protocol's declared inputs by ``complete_for``
(hms.column_synthesis), and the population lists it in ``synthesized`` so every figure built
on it can say so; a file population lacking a column stays an error saying how to supply it.
The generator's demographic columns are drawn *independently* of income and the other
inputs (synthesized ones included): a synthetic run therefore shows no disparity by
construction, and the four-fifths figures only become informative on real (file) populations.
"""

from __future__ import annotations

import csv
import difflib
import math
import os
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hms.column_synthesis import SynthesizedColumn, synthesize
from hms.errors import BadInput
from hms.person_table import HOUSEHOLD_ID, PersonTable, SubFile, link, synthesize_members, with_subgroups
from hms.population_stream import (
    Chunk,
    PopulationFile,
    check_weight,
    integral_weights,
    open_file,
    weighted_cut_points,
)
from hms.yamlsafe import json_path

if TYPE_CHECKING:
    from hms.protocol import Protocol

WEIGHT = "weight"
INCOME = "household_income"
SIZE = "household_size"
# Columns used only to measure fairness; never inputs a rule should read (the compliance scan checks that).
DEMOGRAPHICS = ("race_ethnicity", "sex")
FILE_SUFFIXES = (".csv", ".parquet", ".pq")
MAX_SYNTHETIC_ROWS = 50_000_000
_SYNTHETIC = re.compile(r"^synthetic:([0-9_]+)([kKmM]?)(?::([0-9]+))?$")
_CATALOG_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

# US-like shares (rounded): household sizes 1..8, and the two demographic attributes.
_SIZE_SHARES = (0.28, 0.35, 0.15, 0.125, 0.057, 0.022, 0.010, 0.006)
RACE_ETHNICITY = (
    ("White", 0.58),
    ("Hispanic or Latino", 0.19),
    ("Black", 0.12),
    ("Asian", 0.06),
    ("Two or more / other", 0.04),
    ("American Indian or Alaska Native", 0.01),
)
SEX = (("female", 0.51), ("male", 0.49))


@dataclass(frozen=True)
class Categorical:
    """A demographic column as small integer codes plus labels: cheap to group by (``np.bincount``)."""

    codes: np.ndarray
    labels: tuple[str, ...]

    def strings(self) -> np.ndarray:
        return np.asarray(self.labels, dtype=str)[self.codes]


@dataclass
class Population:
    """Rows to simulate: rule-readable columns, fairness attributes and weights (all NumPy)."""

    source: str  # what it was resolved from: a catalog name, synthetic:N:SEED or a file path
    description: str
    columns: dict[str, np.ndarray]
    attributes: dict[str, Categorical]
    weight: np.ndarray  # float64, finite, >= 0
    notes: list[str] = field(default_factory=list)
    empty: dict[str, int] = field(default_factory=dict)  # column -> first empty row (files)
    synthesis_seed: int | None = None  # synthetic populations only: they may synthesize missing columns
    synthesized: tuple[SynthesizedColumn, ...] = ()  # columns drawn from a protocol's declared inputs
    persons: PersonTable | None = None  # the households' members (hms.person_table), for entity protocols
    provenance: dict[str, Any] | None = None  # the catalog's publisher, year, licence and URL of the data

    @property
    def n(self) -> int:
        return len(self.weight)

    @property
    def rows(self) -> int:
        return self.n

    def chunks(self, names: Collection[str], rows: int) -> Iterator[Chunk]:
        """Slices of ``names`` (raw, as a file's batches are) with their weights and attribute codes."""
        labels = {k: c.labels for k, c in self.attributes.items()}
        for start in range(0, self.n, max(1, rows)):
            stop = min(self.n, start + rows)
            cols = {k: self.columns[k][start:stop] for k in names if k in self.columns}
            attrs = {k: (c.codes[start:stop], labels[k]) for k, c in self.attributes.items()}
            yield Chunk(start, cols, self.weight[start:stop], self.weight_integral, attrs)

    def decile_edges(self, income: str = INCOME) -> np.ndarray | None:
        """The nine weighted cut points of ``income`` (``weighted_cut_points``: the same ones a file's)."""
        inc = self.columns.get(income)
        if inc is None or income in self.empty or inc.dtype.kind not in "iuf" or self.n == 0:
            return None
        return weighted_cut_points(lambda: iter([(inc, self.weight)]), self.n)

    @cached_property
    def weight_integral(self) -> bool:
        """Integer weights make every money total an exact integer number of cents."""
        return integral_weights(self.weight)

    @cached_property
    def total_weight(self) -> float:
        return math.fsum(self.weight.tolist()) if not self.weight_integral else float(self.weight.sum())

    def columns_for(self, ruleset: Any, *, role: str = "") -> tuple[dict[str, np.ndarray], int]:
        """The columns ``ruleset`` reads, type-checked; ``BadInput`` names the file and column."""
        where = self.source + (f" ({role})" if role else "")
        needed = sorted(ruleset.fields_read())
        cols: dict[str, Any] = {}
        for name in needed:
            if name in self.empty:
                raise BadInput(f"column {name!r}: row {self.empty[name]} is empty", where=where)
            if name in self.columns:
                cols[name] = self.columns[name]
            elif name in self.attributes:
                cols[name] = self.attributes[name].strings()
        validated, n = ruleset.coerce_columns(cols, where=where)
        return validated, self.n if not needed else n


# ---- synthetic ---------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticSpec:
    """Knobs of the synthetic generator; a catalog entry's ``overrides`` set these by name."""

    n: int
    seed: int = 0
    weight: int = 1  # households each row stands for
    applicant: str = "adult"  # adult | child: who the ``age`` column describes
    income_median: float = 74_000.0
    income_sigma: float = 0.85
    fire_declared_share: float = 0.30  # share of households living in a county with a fire declaration
    counties: int = 58
    insured_share: float = 0.92
    max_household_size: int = 8

    def check(self, where: str) -> None:
        def bad(name: str, why: str) -> BadInput:
            return BadInput(f"{name} {why}", where=where)

        if not 0 < self.n <= MAX_SYNTHETIC_ROWS:
            raise bad("n", f"must be between 1 and {MAX_SYNTHETIC_ROWS:,}")
        if not (isinstance(self.weight, int) and self.weight >= 1):
            raise bad("weight", f"must be a positive integer, got {self.weight!r}")
        if self.applicant not in ("adult", "child"):
            raise bad("applicant", f"must be 'adult' or 'child', got {self.applicant!r}")
        for name in ("fire_declared_share", "insured_share"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and 0 <= v <= 1):
                raise bad(name, f"must be a share between 0 and 1, got {v!r}")
        if not (isinstance(self.income_median, int | float) and self.income_median > 0):
            raise bad("income_median", "must be a positive number")
        if not (isinstance(self.income_sigma, int | float) and 0 <= self.income_sigma <= 3):
            raise bad("income_sigma", "must be between 0 and 3")
        if not (isinstance(self.counties, int) and 1 <= self.counties <= 10_000):
            raise bad("counties", "must be an integer between 1 and 10000")
        if not (isinstance(self.max_household_size, int) and 2 <= self.max_household_size <= 8):
            raise bad("max_household_size", "must be an integer between 2 and 8")


def parse_synthetic(source: str) -> tuple[int, int] | None:
    """``synthetic:N[:SEED]`` -> (N, SEED); N may use ``_`` and a k/M suffix (``synthetic:1M:7``)."""
    m = _SYNTHETIC.match(source.strip())
    if not m:
        return None
    digits = m.group(1).replace("_", "")
    if not digits:
        return None
    n = int(digits) * {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()]
    return n, int(m.group(3) or 0)


def _draw(rng: np.random.Generator, shares: Iterable[float], n: int) -> np.ndarray:
    """Category codes with the given shares (inverse CDF: one uniform draw per row)."""
    cdf = np.cumsum(np.asarray(list(shares), dtype=np.float64))
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1).astype(np.uint8)


def synthetic(spec: SyntheticSpec, *, source: str | None = None, description: str = "") -> Population:
    """Generate a plausible population; the same spec always gives the same rows."""
    where = source or f"synthetic:{spec.n}:{spec.seed}"
    spec.check(where)
    n = spec.n
    rng = np.random.default_rng(spec.seed)
    shares = _SIZE_SHARES[: spec.max_household_size]
    size = _draw(rng, shares, n).astype(np.int64) + 1
    if spec.applicant == "child":  # a child applicant lives with at least one adult
        size = np.maximum(size, 2)
    # Log-normal income; bigger households have a few more earners on average.
    mu = math.log(spec.income_median) + 0.12 * (np.log(size) - math.log(2))
    income = np.round(np.exp(mu + spec.income_sigma * rng.standard_normal(n)))
    # Counties with Zipf-like sizes; whole counties are declared up to the target share of households.
    county_weight = 1.0 / np.arange(1, spec.counties + 1) ** 0.9
    county = _draw(rng, county_weight, n) if spec.counties <= 256 else _draw_large(rng, county_weight, n)
    share = county_weight / county_weight.sum()
    declared = np.zeros(spec.counties, dtype=bool)
    acc = 0.0
    for c in rng.permutation(spec.counties):  # random counties, skipping any that would overshoot the share
        if acc + share[c] <= spec.fire_declared_share + 0.005:
            declared[c] = True
            acc += share[c]
    fire = declared[county]
    if spec.applicant == "child":
        age = rng.integers(0, 21, n)  # a few 19- and 20-year-olds exercise the age cut-off
        head_age = np.clip(np.round(rng.normal(40, 9, n)), 18, 80).astype(np.int64)
        children = 1 + rng.binomial(size - 2, 0.6)
    else:
        age = np.clip(np.round(rng.normal(47, 16, n)), 18, 95).astype(np.int64)
        head_age = age
        children = rng.binomial(size - 1, 0.45)
    p_insured = np.clip(spec.insured_share + 0.08 * (np.log(income + 1) - math.log(spec.income_median)), 0.02, 0.995)
    insured = rng.random(n) < p_insured
    race = _draw(rng, (s for _, s in RACE_ETHNICITY), n)
    sex = _draw(rng, (s for _, s in SEX), n)
    weight = np.full(n, float(spec.weight))
    return Population(
        source=where,
        description=description or f"{n:,} synthetic households (seed {spec.seed})",
        columns={
            SIZE: size,
            INCOME: income,
            "age": age,
            "head_age": head_age,
            "children": children.astype(np.int64),
            "county": county.astype(np.int64),
            "county_fire_declared": fire,
            "insured": insured,
        },
        attributes={
            "race_ethnicity": Categorical(race, tuple(label for label, _ in RACE_ETHNICITY)),
            "sex": Categorical(sex, tuple(label for label, _ in SEX)),
        },
        weight=weight,
        notes=[] if spec.weight == 1 else [f"each synthetic row stands for {spec.weight} households"],
        synthesis_seed=spec.seed,
    )


def _draw_large(rng: np.random.Generator, shares: np.ndarray, n: int) -> np.ndarray:
    cdf = np.cumsum(shares) / shares.sum()
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)


def synthetic_from(
    source: str, overrides: Mapping[str, Any] | None = None, *, where: str | None = None, description: str = ""
) -> Population:
    parsed = parse_synthetic(source)
    if parsed is None:
        raise BadInput(f"{source!r} is not synthetic:N[:SEED] (e.g. synthetic:200000:2024)", where=where)
    n, seed = parsed
    known = {f.name for f in fields(SyntheticSpec)} - {"n", "seed"}
    spec = SyntheticSpec(n=n, seed=seed)
    for key, value in (overrides or {}).items():
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(known))}"
            raise BadInput(f"unknown synthetic override {key!r}{hint}", where=where)
        spec = replace(spec, **{key: value})
    return synthetic(spec, source=source, description=description)


# ---- columns the rules read that the population lacks ---------------------------------------


def complete_for(pop: Population | PopulationFile, protocols: Sequence[Protocol]) -> Population | PopulationFile:
    """``pop`` with every column the protocols' rules read, households' and members' (see below).

    A streamed file is only checked: its columns are in its footer or header, and nothing is synthesized.
    """
    if isinstance(pop, PopulationFile):
        for proto in protocols:
            if proto.ruleset.model is not None:
                raise BadInput(_no_person_table(proto), where=pop.source)
        missing = sorted({n for p in protocols for n in p.ruleset.fields_read()} - set(pop.names))
        if missing:
            raise BadInput(_missing_columns(missing), where=pop.source)
        return pop
    return _complete_members(_complete_households(pop, protocols), protocols)


def _no_person_table(proto: Protocol) -> str:
    model = proto.ruleset.model
    assert model is not None
    return (
        f"protocol {proto.id!r} reads its {model.plural}' values, and this population has no "
        f"{model.person} table: give its catalog entry `persons: FILE` (linked by {HOUSEHOLD_ID!r}), "
        "or simulate on a synthetic population, which makes its members"
    )


def _complete_members(pop: Population, protocols: Sequence[Protocol]) -> Population:
    """The person table an entity protocol reads: synthesized for a synthetic population, else required."""
    for proto in protocols:
        rs = proto.ruleset
        if rs.model is None:
            continue
        if pop.synthesis_seed is not None:
            before = pop.persons.synthesized if pop.persons is not None else ()
            persons = synthesize_members(
                pop.columns.get(SIZE), pop.n, proto, pop.synthesis_seed, pop.source, pop.persons
            )
            pop = replace(pop, persons=persons, synthesized=(*pop.synthesized, *persons.synthesized[len(before) :]))
            continue
        if pop.persons is None:
            raise BadInput(_no_person_table(proto), where=pop.source)
        missing = sorted(n for n in rs.fields_read() & set(rs.person_specs()) if n not in pop.persons.columns)
        if missing:
            raise BadInput(_missing_columns(missing), where=pop.persons.source)
        if rs.model.subgroups:
            pop = replace(pop, persons=with_subgroups(pop.persons, proto, pop.columns.get(HOUSEHOLD_ID)))
    return pop


def _complete_households(pop: Population, protocols: Sequence[Protocol]) -> Population:
    """``pop`` with every household column the protocols' rules read (the first protocol declaring one wins).

    A synthetic population synthesizes each column it lacks, or whose generator column the
    declaration refuses, from the declared inputs (hms.column_synthesis) and lists it in
    ``synthesized``. A file population lacking one is ``BadInput`` naming the column and how to
    supply it: a file is observed data, and inventing a column of it would pass off guesses as fact.
    """
    wanted: dict[str, Protocol] = {}
    for proto in protocols:
        model = proto.ruleset.model
        for name in sorted(proto.ruleset.fields_read()):
            if model is not None and (model.is_person(name) or model.input_entity.get(name) in model.subgroups):
                continue  # a member's or a sub-group's column: the person table's (_complete_members)
            wanted.setdefault(name, proto)
    missing = [n for n in wanted if n not in pop.columns and n not in pop.attributes]
    if pop.synthesis_seed is None:
        if missing:
            raise BadInput(_missing_columns(missing), where=pop.source)
        return pop
    already = {c.name for c in pop.synthesized}
    misfits: dict[str, str] = {}
    for name, proto in wanted.items():
        if name in pop.columns and name not in already and name not in pop.empty:
            try:
                proto.ruleset.coerce_column(name, pop.columns[name])
            except BadInput as e:
                misfits[name] = e.message
    if not missing and not misfits:
        return pop
    columns = dict(pop.columns)
    synthesized = list(pop.synthesized)
    for name in sorted([*missing, *misfits]):
        proto = wanted[name]
        column, record = synthesize(
            name,
            proto.inputs[name],
            proto.ruleset,
            seed=pop.synthesis_seed,
            n=pop.n,
            at=lambda path, src=proto.source, n=name: f"{src} at {json_path(('inputs', n, *path))}",
            replaces=misfits.get(name, ""),
        )
        columns[name] = column
        synthesized.append(record)
    return replace(pop, columns=columns, synthesized=tuple(synthesized))


def _missing_columns(names: list[str]) -> str:
    one = len(names) == 1
    return (
        f"missing column{'' if one else 's'} {', '.join(map(repr, names))} (read by the rules): "
        f"add {'it' if one else 'them'} to the file, or simulate on a synthetic population "
        "(--population synthetic:N[:SEED], or a catalog entry with a synthetic source), which "
        f"synthesizes {'it' if one else 'them'} from the protocol's declared inputs"
    )


# ---- files -------------------------------------------------------------------


def _arrow_available() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def load_file(
    path: str | Path, persons: str | Path | None = None, subgroups: Mapping[str, str | Path] | None = None
) -> Population:
    """Read a CSV or Parquet population; ``weight`` defaults to 1 per row when the file has none.

    ``persons``: a person table (CSV / Parquet) linked to the households by ``household_id``.
    ``subgroups``: a table per sub-group entity (a household's tax units), linked by ``household_id``
    and the sub-group's id, which each person names in the column of the entity's name.
    """
    raw, empty = _read_table(Path(path))
    pop = from_columns(raw, source=str(path), empty=empty)
    if subgroups and persons is None:
        raise BadInput("sub-group tables need a person table (persons) naming each person's sub-group", where=str(path))
    if persons is not None:
        table = link(pop.columns.get(HOUSEHOLD_ID), _read_full(Path(persons)), n=pop.n, source=str(persons))
        files = {g: SubFile(_read_full(Path(f)), str(f)) for g, f in (subgroups or {}).items()}
        pop.persons = replace(table, sub_files=files)
    return pop


def _read_full(p: Path) -> dict[str, Any]:
    """A table every cell of which must be present (person and sub-group tables)."""
    raw, empty = _read_table(p)
    if empty:
        name, row = next(iter(empty.items()))
        raise BadInput(f"column {name!r}: row {row} is empty", where=str(p))
    return raw


def _read_table(p: Path) -> tuple[dict[str, Any], dict[str, int]]:
    where = str(p)
    if not p.is_file():
        raise BadInput("population file not found" if not p.exists() else "not a regular file", where=where)
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        if not _arrow_available():
            raise BadInput("reading Parquet needs pyarrow, which is not installed; use CSV", where=where)
        raw, empty = _read_parquet(p)
    elif suffix == ".csv":
        raw, empty = _read_csv_arrow(p) if _arrow_available() else _read_csv_plain(p)
    else:
        raise BadInput(f"unknown population file type {suffix or '(none)'!r}; use .csv or .parquet", where=where)
    return raw, empty


def from_columns(
    raw: Mapping[str, Any], *, source: str = "<population>", empty: Mapping[str, int] | None = None
) -> Population:
    """Build a population from named columns (lists or arrays): split off weight and attributes, check them."""
    empty = dict(empty or {})
    lengths = {len(v) for v in raw.values()}
    if len(lengths) > 1:
        raise BadInput(f"columns have different lengths {sorted(lengths)}", where=source)
    n = lengths.pop() if lengths else 0
    notes: list[str] = []
    if WEIGHT in raw:
        if WEIGHT in empty:
            raise BadInput(f"column {WEIGHT!r}: row {empty[WEIGHT]} is empty", where=source)
        weight = check_weight(np.asarray(raw[WEIGHT]), f"{source}: column {WEIGHT!r}")
    else:
        weight = np.ones(n)
        notes.append(f"no {WEIGHT!r} column: each row counts as one household")
    attributes: dict[str, Categorical] = {}
    for name in DEMOGRAPHICS:
        if name in raw:
            if name in empty:
                raise BadInput(f"column {name!r}: row {empty[name]} is empty", where=source)
            labels, codes = np.unique(np.asarray(raw[name]).astype(str), return_inverse=True)
            attributes[name] = Categorical(codes.astype(np.intp), tuple(str(x) for x in labels))
    columns = {k: np.asarray(v) for k, v in raw.items() if k != WEIGHT and k not in attributes}
    return Population(source, f"{n:,} rows from {Path(source).name}", columns, attributes, weight, notes, empty)


def _read_parquet(p: Path) -> tuple[dict[str, Any], dict[str, int]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except (pa.ArrowException, OSError) as e:
        raise BadInput(f"not a readable Parquet file ({e})", where=str(p)) from None
    return _from_arrow(table)


def _read_csv_arrow(p: Path) -> tuple[dict[str, Any], dict[str, int]]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    try:
        table = pcsv.read_csv(p, convert_options=pcsv.ConvertOptions(strings_can_be_null=True))
    except (pa.ArrowException, OSError) as e:
        raise BadInput(f"not a readable CSV file ({e})", where=str(p)) from None
    return _from_arrow(table)


def _from_arrow(table: Any) -> tuple[dict[str, Any], dict[str, int]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    out: dict[str, Any] = {}
    empty: dict[str, int] = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if col.null_count:
            empty[name] = int(pc.index(pc.is_null(col), True).as_py())
            if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
                col = col.cast(pa.float64())
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            out[name] = np.asarray(col.to_pylist(), dtype=object)
        else:
            out[name] = col.to_numpy(zero_copy_only=False)
    return out, empty


_TRUE, _FALSE = {"true", "True", "TRUE"}, {"false", "False", "FALSE"}


def _read_csv_plain(p: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """Stdlib CSV reader (when pyarrow is missing): per column, booleans, integers, floats or strings."""
    try:
        with p.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise BadInput(f"not a readable CSV file ({e})", where=str(p)) from None
    if not rows:
        raise BadInput("empty CSV file (no header)", where=str(p))
    header, body = rows[0], rows[1:]
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise BadInput(f"row {i} has {len(r)} fields, the header {len(header)}", where=str(p))
    out: dict[str, Any] = {}
    empty: dict[str, int] = {}
    for j, name in enumerate(header):
        cells = [r[j] for r in body]
        blank = [i for i, c in enumerate(cells) if c == ""]
        if blank:
            empty[name] = blank[0]
        present = [c for c in cells if c != ""]
        out[name] = _infer(cells, present)
    return out, empty


def _infer(cells: list[str], present: list[str]) -> np.ndarray:
    if present and all(c in _TRUE or c in _FALSE for c in present):
        return np.asarray([c in _TRUE for c in cells], dtype=bool)
    try:
        vals = [int(c) if c != "" else None for c in cells]
        if None not in vals:
            return np.asarray(vals, dtype=np.int64)
    except ValueError:
        pass
    try:
        return np.asarray([float(c) if c != "" else math.nan for c in cells], dtype=np.float64)
    except ValueError:
        return np.asarray(cells, dtype=object)


# ---- catalog and resolution ----------------------------------------------------


def catalog_path() -> Path | None:
    """HMS_POPULATION_CATALOG, else include/populations/catalog.yml of the checkout or the working directory."""
    env = os.environ.get("HMS_POPULATION_CATALOG")
    if env:
        return Path(env)
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
        p = base / "include" / "populations" / "catalog.yml"
        if p.is_file():
            return p
    return None


def load_catalog(path: Path | None = None) -> dict[str, dict[str, Any]]:
    from hms.yamlsafe import load_file as load_yaml

    path = path or catalog_path()
    if path is None:
        return {}
    doc = load_yaml(path)
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("populations"), dict):
        raise BadInput("a population catalog is a mapping with a 'populations' mapping", where=doc.where(()))
    out: dict[str, dict[str, Any]] = {}
    for name, entry in data["populations"].items():
        w = doc.where(("populations", name))
        if not isinstance(entry, dict) or not isinstance(entry.get("source"), str):
            raise BadInput("an entry needs a 'source' (synthetic:N[:SEED] or a file)", where=w)
        extra = set(entry) - {"source", "description", "overrides", "persons", "subgroups", "provenance"}
        if extra:
            raise BadInput(
                f"unknown field {sorted(extra)[0]!r}; allowed: description, overrides, persons, provenance, source, "
                "subgroups",
                where=w,
            )
        _check_provenance(entry.get("provenance"), doc.where(("populations", name, "provenance")))
        if "persons" in entry and (not isinstance(entry["persons"], str) or entry["source"].startswith("synthetic:")):
            raise BadInput("persons is a file (CSV / Parquet) beside a file source", where=w)
        subs = entry.get("subgroups", {})
        if not isinstance(subs, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in subs.items()):
            raise BadInput("subgroups maps each sub-group entity to its file (CSV / Parquet)", where=w)
        if subs and "persons" not in entry:
            raise BadInput("subgroups need a persons file naming each person's sub-group", where=w)
        if not isinstance(entry.get("overrides", {}), dict):
            raise BadInput("overrides must be a mapping", where=w)
        out[str(name)] = {**entry, "_where": w, "_dir": str(Path(path).parent)}
    return out


PROVENANCE_FIELDS = ("publisher", "year", "licence", "url", "notes")


def _check_provenance(prov: Any, where: str) -> None:
    """Where the data comes from: publisher, year and licence are required, so every report can cite them."""
    if prov is None:
        return
    if not isinstance(prov, dict):
        raise BadInput("provenance is a mapping: publisher, year, licence (and url, notes)", where=where)
    unknown = sorted(set(prov) - set(PROVENANCE_FIELDS))
    if unknown:
        raise BadInput(f"unknown provenance field {unknown[0]!r}; allowed: {', '.join(PROVENANCE_FIELDS)}", where=where)
    for key in ("publisher", "year", "licence"):
        if key not in prov:
            raise BadInput(f"provenance needs {key!r}", where=where)
    if not (isinstance(prov["year"], int) and not isinstance(prov["year"], bool) and 1800 <= prov["year"] <= 2200):
        raise BadInput(f"provenance year must be a year such as 2024, got {prov['year']!r}", where=where)
    for key in ("publisher", "licence", "url", "notes"):
        if key in prov and not (isinstance(prov[key], str) and prov[key].strip()):
            raise BadInput(f"provenance {key} must be a non-empty string", where=where)


def resolve(source: str, *, where: str | None = None) -> Population | PopulationFile:
    """A population from a catalog name, ``synthetic:N[:SEED]`` or a CSV / Parquet path."""
    if not isinstance(source, str) or not source.strip():
        raise BadInput("population source is empty", where=where)
    if source.startswith("synthetic:"):
        return synthetic_from(source, where=where or source)
    if _CATALOG_NAME.match(source) and not Path(source).suffix:
        catalog = load_catalog()
        if source not in catalog:
            close = difflib.get_close_matches(source, list(catalog), n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else (f"; known: {', '.join(sorted(catalog))}" if catalog else "")
            )
            raise BadInput(f"unknown population {source!r} (not in the population catalog){hint}", where=where)
        entry = catalog[source]
        src = entry["source"]
        desc = entry.get("description", "")
        if src.startswith("synthetic:"):
            pop = synthetic_from(src, entry.get("overrides"), where=entry["_where"], description=desc)
        else:
            if entry.get("overrides"):
                raise BadInput("overrides apply to synthetic sources only", where=entry["_where"])

            def at(f: str) -> Path:
                return Path(f) if Path(f).is_absolute() else Path(entry["_dir"]) / f

            pop = _file(
                at(src),
                persons=at(entry["persons"]) if "persons" in entry else None,
                subgroups={g: at(f) for g, f in entry.get("subgroups", {}).items()},
            )
            pop.description = desc or pop.description
        pop.source = f"{source} ({pop.source})"
        pop.provenance = entry.get("provenance")
        return pop
    if Path(source).suffix.lower() in FILE_SUFFIXES or Path(source).exists():
        return _file(Path(source))
    raise BadInput(
        f"population {source!r} is neither a catalog name, synthetic:N[:SEED], nor a .csv/.parquet file", where=where
    )


def _file(
    path: Path, persons: Path | None = None, subgroups: Mapping[str, Path] | None = None
) -> Population | PopulationFile:
    """A household file streamed in batches; with a person table (members linked by id) loaded whole."""
    if persons is None and not subgroups and _arrow_available():
        return open_file(path)
    return load_file(path, persons=persons, subgroups=subgroups)


def write_csv(pop: Population, path: str | Path) -> None:
    """Write a population as CSV (tests and users make file populations from synthetic ones)."""
    cols = {**pop.columns, **{k: c.strings() for k, c in pop.attributes.items()}, WEIGHT: pop.weight}
    names = list(cols)
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        wr = csv.writer(f)
        wr.writerow(names)
        arrays = [_csv_cells(cols[k]) for k in names]
        wr.writerows(zip(*arrays, strict=True))


def _csv_cells(a: np.ndarray) -> list[str]:
    if a.dtype == np.bool_:
        return ["true" if x else "false" for x in a.tolist()]
    if a.dtype.kind == "f" and np.all(a == np.floor(a)):
        return [str(int(x)) for x in a.tolist()]
    return [str(x) for x in a.tolist()]

"""The members of a population's households: a person table linked to the household rows.

A protocol that declares entities (hms.rules.entities) reads person-level columns (age,
earnings, role) as well as household ones, so its population is two tables: the household
table (weights are the household's) and a person table, linked by ``household_id`` — a
column of both. Persons are kept sorted by household row (stably: the file's order is the
member order), so a chunk of households is one slice of persons and the simulation reduces
segments (hms.rules.entity_vector) without a loop per household.

A protocol with *sub-groups* (a household's tax units, hms.rules.entities) needs each person's
sub-group: a person column named after the sub-group entity (``tax_unit``), an id unique within
the household, as in a test case. When the sub-group has inputs of its own they come from a
sub-group table (a catalog entry's ``subgroups: {tax_unit: FILE}``) linked by ``household_id``
and that id. ``SubTable`` keeps a sub-group's rows sorted by household row, then by first
appearance among the members, so a chunk of households is one slice of them too.

A synthetic population makes its members itself: ``household_size`` persons per household,
their columns drawn from the protocol's declared person inputs (hms.column_synthesis, each
from its own seeded stream), the first member taking the first role, the others drawn from
the remaining roles; each household forms one sub-group of each sub-group entity, whose inputs
are drawn the same way. Every figure built on them says so, as for any synthesized column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from hms.column_synthesis import SynthesizedColumn, column_rng, synthesize
from hms.errors import BadInput
from hms.rules import SubgroupTable
from hms.yamlsafe import json_path

if TYPE_CHECKING:
    from hms.protocol import Protocol

HOUSEHOLD_ID = "household_id"
SIZE = "household_size"


@dataclass(frozen=True)
class SubTable:
    """One sub-group entity's rows: sorted by household row, then by first appearance among the members."""

    columns: dict[str, np.ndarray]  # the sub-group's inputs, one value per row
    of_person: np.ndarray  # int64: each person's row here (person table order)
    record_of: np.ndarray  # int64, non-decreasing: each row's household row
    ids: np.ndarray  # each row's id within its household, as the person column names it

    def chunk(self, start: int, stop: int, person_lo: int, person_hi: int) -> SubgroupTable:
        """The rows of household rows [start, stop), indexed from the chunk's first person and row."""
        lo, hi = (int(x) for x in np.searchsorted(self.record_of, [start, stop], side="left"))
        return SubgroupTable(
            {k: v[lo:hi] for k, v in self.columns.items()}, self.of_person[person_lo:person_hi] - lo, self.ids[lo:hi]
        )


@dataclass(frozen=True)
class SubFile:
    """A sub-group table as read from its file, linked to the persons once a protocol names the entity."""

    columns: dict[str, Any]
    source: str


@dataclass(frozen=True)
class PersonTable:
    """Person columns sorted by household row; ``member_of[i]`` is person i's household row."""

    columns: dict[str, np.ndarray]
    member_of: np.ndarray  # int64, non-decreasing
    source: str
    synthesized: tuple[SynthesizedColumn, ...] = ()
    subs: Mapping[str, SubTable] = field(default_factory=dict)  # sub-group entity -> its rows
    sub_files: Mapping[str, SubFile] = field(default_factory=dict)  # sub-group entity -> its file, unlinked

    @property
    def m(self) -> int:
        return len(self.member_of)

    def rows_for(self, start: int, stop: int) -> tuple[int, int]:
        """The persons of household rows [start, stop): one contiguous slice."""
        lo, hi = np.searchsorted(self.member_of, [start, stop], side="left")
        return int(lo), int(hi)


def link(household_ids: Any, columns: Mapping[str, Any], *, n: int, source: str) -> PersonTable:
    """Persons linked to household rows by ``household_id``; ``BadInput`` names the row that does not link."""
    if HOUSEHOLD_ID not in columns:
        raise BadInput(
            f"the person table needs a {HOUSEHOLD_ID!r} column linking each person to a household", where=source
        )
    if household_ids is None:
        raise BadInput(f"the household table needs a {HOUSEHOLD_ID!r} column for its person table", where=source)
    hids = np.asarray(household_ids)
    pids = np.asarray(columns[HOUSEHOLD_ID])
    if hids.dtype.kind in "iuf" and pids.dtype.kind in "iuf":
        hids, pids = hids.astype(np.float64), pids.astype(np.float64)
    else:
        hids, pids = hids.astype(str), pids.astype(str)
    uniq, first, counts = np.unique(hids, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = uniq[int(np.argmax(counts > 1))]
        raise BadInput(f"{HOUSEHOLD_ID} {_show(dup)} appears on more than one household row", where=source)
    pos = np.searchsorted(uniq, pids)
    pos = np.minimum(pos, max(len(uniq) - 1, 0))
    ok = (uniq[pos] == pids) if len(uniq) else np.zeros(len(pids), dtype=bool)
    if not ok.all():
        r = int(np.argmin(ok))
        raise BadInput(f"person row {r}: {HOUSEHOLD_ID} {_show(pids[r])} is no household's", where=source)
    member_of = first[pos].astype(np.int64)
    counts_per_row = np.bincount(member_of, minlength=n)
    if n and counts_per_row.min() == 0:
        r = int(np.argmin(counts_per_row))
        raise BadInput(f"household row {r} ({HOUSEHOLD_ID} {_show(hids[r])}) has no members", where=source)
    order = np.argsort(member_of, kind="stable")
    cols = {k: np.asarray(v)[order] for k, v in columns.items() if k != HOUSEHOLD_ID}
    return PersonTable(cols, member_of[order], source)


def _show(x: Any) -> str:
    x = x.item() if hasattr(x, "item") else x
    return repr(int(x)) if isinstance(x, float) and x.is_integer() else repr(x)


def synthesize_members(
    household_size: np.ndarray | None, n: int, proto: Protocol, seed: int, source: str, have: PersonTable | None
) -> PersonTable:
    """Members for a synthetic population: ``household_size`` each, person inputs drawn from the declarations.

    ``have``: a person table already made (for another protocol); only the columns it lacks are drawn.
    """
    rs = proto.ruleset
    model = rs.model
    assert model is not None
    if have is not None:
        table = have
    else:
        size = np.ones(n, dtype=np.int64) if household_size is None else np.asarray(household_size).astype(np.int64)
        table = PersonTable({}, np.repeat(np.arange(n, dtype=np.int64), np.maximum(size, 1)), source)
    columns = dict(table.columns)
    made = list(table.synthesized)
    read = rs.fields_read()
    for name in sorted(read & set(rs.person_specs())):
        if name in columns:
            continue
        if name in model.role_fields():
            columns[name], record = _roles(name, model.role_fields()[name], table.member_of, seed)
        else:
            columns[name], record = synthesize(
                name,
                proto.inputs[name],
                rs,
                seed=seed,
                n=table.m,
                at=lambda path, src=proto.source, nm=name: f"{src} at {json_path(('inputs', nm, *path))}",
            )
        made.append(SynthesizedColumn(f"{model.person}.{name}", record.how))
    subs = dict(table.subs)
    for g in model.subgroups:
        if g not in columns:
            columns[g] = np.ones(table.m, dtype=np.int64)
            made.append(SynthesizedColumn(f"{model.person}.{g}", f"every member of a household in one {g} (id 1)"))
        sub = subs.get(g) or _index(columns[g], table.member_of, g, source)
        sub_columns = dict(sub.columns)
        for name in sorted(read & set(rs.sub_specs()[g])):
            if name in sub_columns:
                continue
            sub_columns[name], record = synthesize(
                name,
                proto.inputs[name],
                rs,
                seed=seed,
                n=len(sub.ids),
                at=lambda path, src=proto.source, nm=name: f"{src} at {json_path(('inputs', nm, *path))}",
            )
            made.append(SynthesizedColumn(f"{g}.{name}", record.how))
        subs[g] = replace(sub, columns=sub_columns)
    return PersonTable(columns, table.member_of, table.source, tuple(made), subs, table.sub_files)


def with_subgroups(table: PersonTable, proto: Protocol, household_ids: Any) -> PersonTable:
    """``table`` with the rows of each sub-group entity ``proto`` declares, from a file population.

    Each person names its sub-group in the person column of the entity's name; the sub-group's inputs
    that the rules read come from its file (``sub_files``), linked by ``household_id`` and that id.
    ``BadInput`` names the file, the household and the sub-group that do not link.
    """
    model = proto.ruleset.model
    assert model is not None
    subs = dict(table.subs)
    for g in model.subgroups:
        specs = proto.ruleset.sub_specs()[g]
        wanted = sorted(proto.ruleset.fields_read() & set(specs))
        sub = subs.get(g)
        if sub is None:
            if g not in table.columns:
                raise BadInput(
                    f"protocol {proto.id!r} groups its {model.plural} into {g} sub-groups: the {model.person} table "
                    f"needs a {g!r} column naming each {model.person}'s {g} (an id unique within the household)",
                    where=table.source,
                )
            sub = _index(table.columns[g], table.member_of, g, table.source)
        missing = [n for n in wanted if n not in sub.columns]
        if missing:
            file = table.sub_files.get(g)
            if file is None:
                raise BadInput(
                    f"protocol {proto.id!r} reads the {g} input(s) {', '.join(missing)}, and this population has no "
                    f"{g} table: give its catalog entry `subgroups: {{{g}: FILE}}` (linked by {HOUSEHOLD_ID!r} "
                    f"and {g!r})",
                    where=table.source,
                )
            linked = _linked_columns(sub, file, g, missing, household_ids, proto)
            sub = replace(sub, columns={**sub.columns, **linked})
        subs[g] = sub
    return replace(table, subs=subs)


def _ids(values: Any) -> np.ndarray:
    """Ids as comparable values: numbers as float64 (a CSV's 1 and a Parquet's 1.0 are one id), else strings."""
    a = np.asarray(values)
    return a.astype(np.float64) if a.dtype.kind in "iuf" else a.astype(str)


def _index(values: Any, member_of: np.ndarray, g: str, source: str) -> SubTable:
    """Each person's sub-group row from the person column ``g``, rows in household then first-appearance order."""
    ids = _ids(values)
    if ids.dtype.kind == "U" and len(ids) and (ids == "").any():
        raise BadInput(f"person row {int(np.argmax(ids == ''))}: {g} is empty", where=source)
    _, code = np.unique(ids, return_inverse=True)
    key = member_of * (int(code.max(initial=0)) + 1) + code.reshape(-1)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    firsts = first[order]
    return SubTable({}, rank[inverse.reshape(-1)].astype(np.int64), member_of[firsts], np.asarray(values)[firsts])


def _linked_columns(
    sub: SubTable, file: SubFile, g: str, names: list[str], household_ids: Any, proto: Protocol
) -> dict[str, np.ndarray]:
    """The sub-group file's ``names`` columns in ``sub``'s row order; every row of each side must match one."""
    for need in (HOUSEHOLD_ID, g, *names):
        if need not in file.columns:
            raise BadInput(f"the {g} table needs a {need!r} column", where=file.source)
    if household_ids is None:
        raise BadInput(f"the household table needs a {HOUSEHOLD_ID!r} column for its {g} table", where=file.source)
    hids = _ids(household_ids)
    fh = _ids(file.columns[HOUSEHOLD_ID])
    if hids.dtype != fh.dtype:
        hids, fh = hids.astype(str), fh.astype(str)
    sorter = np.argsort(hids, kind="stable")
    pos = np.minimum(np.searchsorted(hids, fh, sorter=sorter), max(len(hids) - 1, 0))
    hrow = sorter[pos] if len(hids) else np.zeros(len(fh), dtype=np.int64)
    known = hids[hrow] == fh if len(hids) else np.zeros(len(fh), dtype=bool)
    if not known.all():
        r = int(np.argmin(known))
        raise BadInput(f"row {r}: {HOUSEHOLD_ID} {_show(fh[r])} is no household's", where=file.source)
    mine, theirs = _ids(sub.ids), _ids(file.columns[g])
    if mine.dtype != theirs.dtype:
        mine, theirs = mine.astype(str), theirs.astype(str)
    _, code = np.unique(np.concatenate([mine, theirs]), return_inverse=True)
    code = code.reshape(-1)
    width = int(code.max(initial=0)) + 1
    sub_key = sub.record_of * width + code[: len(mine)]
    file_key = hrow.astype(np.int64) * width + code[len(mine) :]
    uniq, first, counts = np.unique(file_key, return_index=True, return_counts=True)
    if (counts > 1).any():
        r = int(first[int(np.argmax(counts > 1))])
        raise BadInput(
            f"row {r}: {HOUSEHOLD_ID} {_show(fh[r])}, {g} {_show(theirs[r])} appears on more than one row",
            where=file.source,
        )
    at = np.minimum(np.searchsorted(uniq, sub_key), max(len(uniq) - 1, 0))
    found = uniq[at] == sub_key if len(uniq) else np.zeros(len(sub_key), dtype=bool)
    if not found.all():
        j = int(np.argmin(found))
        raise BadInput(
            f"{HOUSEHOLD_ID} {_show(hids[sub.record_of[j]])}: {g} {_show(mine[j])}, named by its members, "
            "has no row here",
            where=file.source,
        )
    if len(uniq) > len(sub_key):
        used = np.zeros(len(uniq), dtype=bool)
        used[at] = True
        r = int(first[int(np.argmin(used))])
        raise BadInput(
            f"row {r}: {HOUSEHOLD_ID} {_show(fh[r])}, {g} {_show(theirs[r])} has no members (no person names that {g})",
            where=file.source,
        )
    rows = first[at]
    out = {}
    for name in names:
        col = proto.ruleset.coerce_column(name, file.columns[name], where=f"{file.source}: column {name!r}")
        out[name] = col[rows]
    return out


def _roles(name: str, roles: tuple[str, ...], member_of: np.ndarray, seed: int) -> tuple[np.ndarray, SynthesizedColumn]:
    """A role field (``role``, ``tax_unit_role``): the first member of each household (and so of its one
    synthetic sub-group) the first role, the others drawn from the rest, each field its own stream."""
    first = np.ones(len(member_of), dtype=bool)
    first[1:] = member_of[1:] != member_of[:-1]
    others = roles[1:] or roles[:1]
    drawn = np.asarray(others)[column_rng(seed, name).integers(0, len(others), len(member_of))]
    values = np.where(first, roles[0], drawn)
    how = f"the first member of each household {roles[0]!r}, the others uniform over {list(others)}"
    return values, SynthesizedColumn(name, how)


__all__ = ["HOUSEHOLD_ID", "PersonTable", "SubFile", "SubTable", "link", "synthesize_members", "with_subgroups"]

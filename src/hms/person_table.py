"""The members of a population's households: a person table linked to the household rows.

A protocol that declares entities (hms.rules.entities) reads person-level columns (age,
earnings, role) as well as household ones, so its population is two tables: the household
table (weights are the household's) and a person table, linked by ``household_id`` — a
column of both. Persons are kept sorted by household row (stably: the file's order is the
member order), so a chunk of households is one slice of persons and the simulation reduces
segments (hms.rules.entity_vector) without a loop per household.

A synthetic population makes its members itself: ``household_size`` persons per household,
their columns drawn from the protocol's declared person inputs (hms.column_synthesis, each
from its own seeded stream), the first member taking the first role, the others drawn from
the remaining roles. Every figure built on them says so, as for any synthesized column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hms.column_synthesis import SynthesizedColumn, column_rng, synthesize
from hms.errors import BadInput
from hms.yamlsafe import json_path

if TYPE_CHECKING:
    from hms.protocol import Protocol

HOUSEHOLD_ID = "household_id"
SIZE = "household_size"


@dataclass(frozen=True)
class PersonTable:
    """Person columns sorted by household row; ``member_of[i]`` is person i's household row."""

    columns: dict[str, np.ndarray]
    member_of: np.ndarray  # int64, non-decreasing
    source: str
    synthesized: tuple[SynthesizedColumn, ...] = ()

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
        if name == "role":
            columns[name], record = _roles(model.roles, table.member_of, seed)
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
    return PersonTable(columns, table.member_of, table.source, tuple(made))


def _roles(roles: tuple[str, ...], member_of: np.ndarray, seed: int) -> tuple[np.ndarray, SynthesizedColumn]:
    first = np.ones(len(member_of), dtype=bool)
    first[1:] = member_of[1:] != member_of[:-1]
    others = roles[1:] or roles[:1]
    drawn = np.asarray(others)[column_rng(seed, "role").integers(0, len(others), len(member_of))]
    values = np.where(first, roles[0], drawn)
    how = f"the first member of each household {roles[0]!r}, the others uniform over {list(others)}"
    return values, SynthesizedColumn("role", how)


__all__ = ["HOUSEHOLD_ID", "PersonTable", "link", "synthesize_members"]

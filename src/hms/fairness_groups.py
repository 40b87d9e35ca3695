"""The groups a simulation's fairness figures are computed over, beyond the population's demographics.

The population's demographic attributes (race/ethnicity, sex) are measured on every run, and the ethics
scan gates their four-fifths ratios. A protocol may also read protected characteristics itself (CHIP reads
``age``, SNAP a disability flag); those inputs declare ``data_class: protected`` with their characteristic,
and the analyst needs to see how selection falls across them too. They are *shown*, not gated: a protected
input a rule reads is already denied by the scan unless an exemption cites the law that draws the line,
and then a ratio far from one is the law's intent, not a finding.

A group is a small code per row: a boolean is two groups, a string its values (at most ``MAX_GROUPS``),
an age the usual bands. Other numbers have no natural groups and are listed in ``skipped`` with why.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from hms.protocol import Protocol

MAX_GROUPS = 24
AGE_BANDS = ((0, "under 18"), (18, "18–24"), (25, "25–34"), (35, "35–44"), (45, "45–54"), (55, "55–64"), (65, "65+"))


@dataclass(frozen=True)
class DeclaredGroup:
    """One protected input of the protocol, as groups: the column, how it is grouped, its exemption."""

    name: str
    characteristic: str
    kind: str  # boolean | category | age
    exemption: str | None  # the authority an exemption cites, when the protocol gives one

    def codes(self, col: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]] | None:
        """(codes, labels) for one chunk of the column; None when this chunk's values cannot be grouped."""
        if self.kind == "boolean":
            if col.dtype != np.bool_:
                return None
            return col.astype(np.intp), ("false", "true")
        if self.kind == "age":
            if col.dtype.kind not in "iuf":
                return None
            cuts = np.asarray([lo for lo, _ in AGE_BANDS[1:]], dtype=np.float64)
            return np.searchsorted(cuts, col.astype(np.float64), side="right"), tuple(b for _, b in AGE_BANDS)
        labels, codes = np.unique(col.astype(str), return_inverse=True)
        if len(labels) > MAX_GROUPS:
            return None
        return codes.astype(np.intp), tuple(str(x) for x in labels)


def declared_groups(
    protocols: Sequence[Protocol], available: Collection[str], exclude: Collection[str] = ()
) -> tuple[list[DeclaredGroup], list[str]]:
    """The protected inputs the protocols declare that the population has as household columns; and, for
    each protected input left out, a sentence saying why."""
    out: dict[str, DeclaredGroup] = {}
    skipped: list[str] = []
    for proto in protocols:
        model = proto.ruleset.model
        for name, spec in proto.inputs.items():
            if spec.get("data_class") != "protected" or name in out or name in exclude:
                continue
            characteristic = str(spec.get("protected_characteristic") or name)
            if model is not None and model.input_entity.get(name) != model.group:
                skipped.append(f"{name}: a {model.person}'s value, not the household's (no household groups)")
                continue
            if name not in available:
                skipped.append(f"{name}: not a column of the population")
                continue
            t = spec.get("type")
            kind = "boolean" if t == "boolean" else "age" if characteristic == "age" and t in ("integer", "number") \
                else "category" if t == "string" else None
            if kind is None:
                skipped.append(f"{name}: a number other than an age has no natural groups")
                continue
            exemption = spec.get("exemption")
            authority = exemption.get("authority") if isinstance(exemption, dict) else None
            out[name] = DeclaredGroup(name, characteristic, kind, authority)
    return list(out.values()), skipped

"""Legal references: which provision a parameter's value or a rule comes from.

A notice of action must say under which provision a benefit was denied, so a protocol may carry a
``reference`` on each parameter and rule, as OpenFisca's parameter files do:

    parameters:
      shelter_cap: {value: 744, reference: "7 U.S.C. 2014(e)(6)(B)"}
      fpl: {value: {1: 15650, 2: 21150}, reference: "HHS 2025 poverty guidelines, 90 FR 5917"}
      standard_deduction:                     # dated: each value carries its own (hms.dated)
        values: [{from: 2025-10-01, value: 209, reference: "FNS SNAP FY2026 COLA"}]
    rules:
      eligible: {formula: "income <= limit", reference: "Pub. L. 118-XX, sec. 3(b)"}

An object is a referenced parameter when it holds both ``value`` and ``reference`` (a table needs
neither key, so ``{value: 3}`` alone stays a table whose key is "value", as it always was). The rules
only ever see the value; the explanation (hms.rules.explain) reads the references.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

VALUE, REFERENCE = "value", "reference"


def is_referenced(value: Any) -> bool:
    """True for ``{value: …, reference: "…"}``: a plain parameter written with its legal reference."""
    return isinstance(value, Mapping) and VALUE in value and isinstance(value.get(REFERENCE), str)


def unwrap(value: Any) -> tuple[Any, str | None]:
    """A parameter's value (scalar or table) and its reference (None when it carries none)."""
    if is_referenced(value):
        return value[VALUE], value[REFERENCE]
    return value, None


def with_reference(value: Any, reference: str | None) -> Any:
    """``value`` as a referenced parameter (unchanged when there is no reference to carry)."""
    return value if reference is None else {VALUE: value, REFERENCE: reference}


def of_rule(decl: Any) -> str | None:
    """A rule's reference: ``{formula, reference}``; a bare formula string carries none."""
    if isinstance(decl, Mapping):
        ref = decl.get(REFERENCE)
        return ref if isinstance(ref, str) else None
    return None


__all__ = ["is_referenced", "of_rule", "unwrap", "with_reference"]

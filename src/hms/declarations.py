"""Privacy by declaration: every protocol input says what kind of data it is and why a rule needs it.

The compliance scan used to guess from field names, and a free-text ``justification`` or
``lawful_purpose`` next to a field silenced its finding. Guessing misses ``soc_sec_num`` and a race
column called ``grp``; a sentence anyone can type approves nothing. So each input now *declares*:

``data_class``
    ``public`` (not about a person: a county's disaster declaration), ``personal`` (about an
    applicant: income, household size), ``sensitive`` (special-category or identifying personal data:
    an SSN, a health condition, a bank account) or ``protected`` (a characteristic that
    anti-discrimination law protects).
``purpose``
    Why the rules need it (at least 10 characters): what a reviewer weighs the collection against.
``protected_characteristic``
    Only and always for ``protected``: which one (``PROTECTED_CHARACTERISTICS``).
``exemption: {authority, reason}``
    Only for ``protected``: the legal authority (a citation, the same form as ``metadata.authority``)
    that allows an eligibility or amount rule to read it. It turns the ethics denial into a warning
    that the legal role must approve (``required_review_roles``), never into silence.

The scan (include/policies) decides from these declarations first and keeps name- and content-based
detection as a second line that catches an input declared ``public`` to evade it. This module is the
loader's half: ``check_inputs`` refuses at pack, before the JSON Schema, so the message says how to
declare rather than which schema keyword failed; the schema (protocol.schema.json) states the same.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from hms.decision_masking import check_declaration as check_log_declaration
from hms.errors import BadInput

DATA_CLASSES = ("public", "personal", "sensitive", "protected")
PROTECTED_CHARACTERISTICS = (
    "race",
    "color",
    "ethnicity",
    "national_origin",
    "citizenship",
    "religion",
    "sex",
    "gender",
    "gender_identity",
    "sexual_orientation",
    "pregnancy",
    "marital_status",
    "familial_status",
    "disability",
    "genetic_information",
    "age",
    "veteran_status",
)
PURPOSE_MIN = 10
LEGAL_ROLE = "legal"  # approves every exemption; include/policies/data.json names the same role
RETIRED = ("lawful_purpose", "justification")

HOW = (
    "declare it as  data_class: public|personal|sensitive|protected  and  purpose: <why the rules need it, "
    f"≥{PURPOSE_MIN} characters>; a protected input also names  protected_characteristic: "
    f"<{'|'.join(PROTECTED_CHARACTERISTICS)}>  and, to let an eligibility or amount rule read it, "
    "exemption: {authority: <legal citation>, reason: <why>}  (approved by the legal role)"
)

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")  # other names are the schema's to refuse
Where = Callable[[tuple[Any, ...]], str]


def check_inputs(inputs: Any, where: Where) -> None:
    """Refuse an input without a complete declaration (BadInput naming file, line and field).

    Runs before the schema and checks only what the declaration is about; shapes it does not
    recognise (inputs not a mapping, an input not a mapping) are left to the schema's message.
    """
    if not isinstance(inputs, Mapping):
        return
    for name, spec in inputs.items():
        if isinstance(spec, Mapping) and _IDENTIFIER.match(str(name)):
            _check_one(str(name), spec, lambda *p, n=name: where(("inputs", n, *p)))


def _check_one(name: str, spec: Mapping[str, Any], where: Callable[..., str]) -> None:
    for old in RETIRED:
        if old in spec:
            raise BadInput(
                f"input {name!r}: {old!r} is no longer accepted — a free-text reason never silences a "
                f"finding; {HOW}",
                where=where(old),
            )
    cls = spec.get("data_class")
    if cls is None:
        raise BadInput(f"input {name!r} declares no data_class: {HOW}", where=where())
    if cls not in DATA_CLASSES:
        raise BadInput(
            f"input {name!r}: data_class {cls!r} is not one of {', '.join(DATA_CLASSES)}", where=where("data_class")
        )
    purpose = spec.get("purpose")
    if not isinstance(purpose, str) or len(purpose.strip()) < PURPOSE_MIN:
        raise BadInput(
            f"input {name!r} declares no purpose: say why the rules need it (purpose: …, ≥{PURPOSE_MIN} characters)",
            where=where("purpose") if "purpose" in spec else where(),
        )
    characteristic = spec.get("protected_characteristic")
    if cls == "protected":
        if characteristic not in PROTECTED_CHARACTERISTICS:
            got = "none" if characteristic is None else repr(characteristic)
            raise BadInput(
                f"input {name!r} is protected and must name its protected_characteristic "
                f"(one of {', '.join(PROTECTED_CHARACTERISTICS)}; got {got})",
                where=where("protected_characteristic") if characteristic is not None else where(),
            )
    else:
        for key in ("protected_characteristic", "exemption"):
            if key in spec:
                raise BadInput(
                    f"input {name!r}: {key} belongs to a protected input only (data_class is {cls!r}); "
                    "declare data_class: protected or remove it",
                    where=where(key),
                )
    check_log_declaration(name, spec, where)  # how the decision log keeps it, within what its class allows
    exemption = spec.get("exemption")
    if exemption is not None:
        ok = isinstance(exemption, Mapping) and all(
            isinstance(exemption.get(k), str) and exemption[k].strip() for k in ("authority", "reason")
        )
        if not ok:
            raise BadInput(
                f"input {name!r}: exemption needs authority (a legal citation, like metadata.authority) "
                "and reason, both non-empty",
                where=where("exemption"),
            )


def exempted_inputs(protocol_data: Mapping[str, Any]) -> list[str]:
    """Inputs that carry an exemption (sorted): each one needs the legal role's approval."""
    inputs = protocol_data.get("inputs") or {}
    return sorted(n for n, spec in inputs.items() if isinstance(spec, Mapping) and spec.get("exemption"))


def required_review_roles(protocol: Any) -> tuple[str, ...]:
    """Roles the protocol's own declarations add to its approval policy: ``legal`` for any exemption.

    An exemption is a legal judgement (this authority allows reading that characteristic), so
    whoever configures the pipeline cannot leave the legal office out of approving it.
    """
    data = protocol.data if hasattr(protocol, "data") else protocol
    return (LEGAL_ROLE,) if exempted_inputs(data) else ()

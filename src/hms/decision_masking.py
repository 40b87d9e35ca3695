"""How each input of a decision is kept in the decision log: in clear, as a keyed hash, or not at all.

The data class an input declares (hms.declarations) decides, and a protocol may say otherwise per input with
``log:`` — within what its class allows:

============  =========  ==========================  ==============================================
data_class    default    also allowed                why
============  =========  ==========================  ==============================================
public        keep       hash, drop                  not about a person (a county's declaration)
personal      hash       keep (with ``log_purpose``),  about an applicant: never in clear by default;
                         drop                        ``keep`` is a declared, reviewed choice
sensitive     drop       hash                        an SSN, a health condition: never in clear; a
                                                     keyed hash can still link repeated applications
protected     drop       —                           a characteristic the law protects takes few
                                                     values: its hash *is* the value to whoever holds
                                                     the key, and groups people by it to anyone else
============  =========  ==========================  ==============================================

A keyed hash (HMAC-SHA256 with the environment's secret, hms.decision_log_key) cannot be replayed: replay
(hms.replay) says which logged field it would have needed instead of guessing. A protocol whose rule changes
should be replayed on real incomes declares ``log: keep`` on them with a ``log_purpose``; the privacy scan
lists every such input for review (include/policies/privacy.rego), so keeping personal data in clear is an
approved decision, not a default.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hms.errors import BadInput

KEEP, HASH, DROP = "keep", "hash", "drop"
TREATMENTS = (KEEP, HASH, DROP)
DEFAULT = {"public": KEEP, "personal": HASH, "sensitive": DROP, "protected": DROP}
ALLOWED = {
    "public": (KEEP, HASH, DROP),
    "personal": (KEEP, HASH, DROP),
    "sensitive": (HASH, DROP),
    "protected": (DROP,),
}
WHY_NOT = {
    ("sensitive", KEEP): "a sensitive input is never logged in clear (hash or drop it)",
    ("protected", KEEP): "a protected input is never logged in clear",
    ("protected", HASH): "a protected characteristic takes few values, so its keyed hash is the value to "
                         "whoever holds the key; it can only be dropped",
}
LOG_PURPOSE_MIN = 10
HASH_PREFIX = "hmac-sha256:"
HASH_HEX = 32  # 128 bits of the MAC: collisions are out of reach, and the log stays small


def check_declaration(name: str, spec: Mapping[str, Any], where: Callable[..., str]) -> None:
    """Refuse a ``log`` the input's class does not allow, or a ``keep`` of personal data without its purpose."""
    cls = spec.get("data_class")
    treatment = spec.get("log")
    if treatment is None:
        if "log_purpose" in spec:
            raise BadInput(f"input {name!r}: log_purpose belongs with log: keep", where=where("log_purpose"))
        return
    if treatment not in TREATMENTS:
        raise BadInput(f"input {name!r}: log {treatment!r} is not one of {', '.join(TREATMENTS)}", where=where("log"))
    if cls in ALLOWED and treatment not in ALLOWED[cls]:
        raise BadInput(f"input {name!r} is {cls}: log: {treatment} is refused — {WHY_NOT[(cls, treatment)]}",
                       where=where("log"))
    purpose = spec.get("log_purpose")
    if treatment == KEEP and cls == "personal":
        if not isinstance(purpose, str) or len(purpose.strip()) < LOG_PURPOSE_MIN:
            raise BadInput(
                f"input {name!r} is personal: log: keep needs log_purpose, why the decision log must keep it in "
                f"clear (≥{LOG_PURPOSE_MIN} characters, e.g. replaying a change of the income limit)",
                where=where("log_purpose") if "log_purpose" in spec else where("log"),
            )
    elif "log_purpose" in spec:
        raise BadInput(f"input {name!r}: log_purpose belongs with log: keep of a personal input",
                       where=where("log_purpose"))


def treatment_of(spec: Mapping[str, Any]) -> str:
    """What the log does with one declared input."""
    return spec.get("log") or DEFAULT.get(spec.get("data_class", ""), DROP)


@dataclass(frozen=True)
class Masking:
    """One protocol's treatment of each input; a field no input declares (a member's ``role``, a sub-group's
    ``id``) is the request's structure, not data about a person, and is kept."""

    treatments: Mapping[str, str]

    @classmethod
    def of(cls, inputs: Mapping[str, Mapping[str, Any]]) -> Masking:
        return cls({n: treatment_of(spec) for n, spec in inputs.items()})

    def apply(self, record: Any, key: bytes) -> Any:
        """The record as the log keeps it: a household's members and sub-groups field by field too."""
        if isinstance(record, list):
            return [self.apply(x, key) for x in record]
        if not isinstance(record, dict):
            return record
        out: dict[str, Any] = {}
        for k, v in record.items():
            t = self.treatments.get(k)
            if t is None:
                out[k] = self.apply(v, key)
            elif t == KEEP:
                out[k] = v
            elif t == HASH:
                out[k] = keyed_hash(key, k, v)
        return out


def keyed_hash(key: bytes, name: str, value: Any) -> str:
    """HMAC-SHA256 of the field's name and value (canonical JSON): equal values of one field hash alike, so the
    log can still tell that two decisions were about the same income, never what it was."""
    msg = json.dumps([name, value], separators=(",", ":"), ensure_ascii=False).encode()
    return HASH_PREFIX + hmac.new(key, msg, hashlib.sha256).hexdigest()[:HASH_HEX]

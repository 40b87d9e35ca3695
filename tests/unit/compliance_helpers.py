"""Shared helpers for the compliance tests: variant protocols, a pinned clock, fixed pipeline settings."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hms import protocol
from hms.approvals import ApprovalPolicy
from hms.compliance import Settings
from hms.protocol import Protocol
from tests.conftest import CHIP, WILDFIRE

# A pinned instant, whatever the real clock says: before wildfire's effective time (2026-12-01), after chip's.
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
NOW_ARG = "2026-11-01T12:00:00+00:00"
SETTINGS = Settings(freeze_windows=(), approval_policy=ApprovalPolicy(2, ("legal", "budget")))


def sample(name: str) -> Protocol:
    return protocol.load({"wildfire": WILDFIRE, "chip": CHIP}[name])


def variant(name: str, change: Callable[[dict[str, Any]], None]) -> Protocol:
    """A sample protocol with ``change`` applied to a deep copy of its data, validated again."""
    data = copy.deepcopy(sample(name).data)
    change(data)
    return protocol.from_data(data, source=f"<{name} variant>")


def add_input(data: dict[str, Any], field: str, spec: dict[str, Any], value: Any) -> None:
    """Declare an input and give every test fixture a value for it (fixtures must carry every input)."""
    data["inputs"][field] = spec
    for case in data["tests"]:
        case["input"][field] = value


def decl(type_: str, data_class: str, **extra: Any) -> dict[str, Any]:
    """An input spec with its declaration (every input must have one; hms.declarations)."""
    return {"type": type_, "data_class": data_class, "purpose": "what the rules need it for", **extra}

"""The JSON Schema validator every hms schema is checked with: Draft 2020-12 with ECMA-262's ``$``.

Python's ``$`` also matches before a final newline, so ``"wildfire-aid\\n"`` would pass a
DNS-label pattern and travel on into DAG ids, Kubernetes names and shell arguments. JSON
Schema patterns are ECMA-262 regular expressions, where ``$`` is the end of the string; this
validator gives them that meaning. One definition for the protocol schema and the pipeline
config schema (jsonschema is imported by the caller, lazily where start-up time matters).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any


def _ecma_pattern(validator: Any, pattern: str, instance: Any, _schema: Any) -> Iterator[Any]:
    import jsonschema

    if not validator.is_type(instance, "string"):
        return
    py = pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$") else pattern
    if re.search(py, instance) is None:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def validator_class() -> Any:
    """``jsonschema.Draft202012Validator`` with the ECMA-262 ``pattern`` keyword."""
    import jsonschema

    return jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _ecma_pattern})

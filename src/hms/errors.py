"""Error types shared by the core and the CLI.

Two families map to the exit codes promised to users: ``BadInput`` (exit 2: the
user gave us something we refuse, and nothing was changed) and ``CheckFailed``
(exit 1: the input was fine but a gate said no — a test, the budget, a scan).
Every error carries the place it is about so the one line we print points the
user at the file, field or line to fix.
"""

from __future__ import annotations


class HmsError(Exception):
    """Base class: a message and the place (file, JSON path, line) it concerns."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class BadInput(HmsError):
    """Input we refuse (malformed file, schema violation, unsafe archive). Exit 2."""

    exit_code = 2


class CheckFailed(HmsError):
    """A gate that said no (a failing test case, over budget, a scan finding). Exit 1."""

    exit_code = 1


class RuleError(BadInput):
    """A rule that cannot be loaded (syntax, forbidden construct, unknown name, cycle, type)."""

    def __init__(self, message: str, *, rule: str | None = None, column: int | None = None, where: str | None = None):
        if where is None and rule is not None:
            where = f"rule {rule!r}" + (f", column {column}" if column else "")
        super().__init__(message, where=where)
        self.rule = rule
        self.column = column


class EvaluationError(HmsError):
    """A rule that failed on a record: division by zero, a missing table key, a bad value.

    Raised by both backends with the rule name and the offending record (vectorized:
    the first offending row), never replaced by NaN or a default. Exit 1 in
    ``hms policy test``; a 422 in the decision service.
    """

    exit_code = 1

    def __init__(self, message: str, *, rule: str, record: dict | None = None, row: int | None = None) -> None:
        where = f"rule {rule!r}" + (f", row {row}" if row is not None else "")
        super().__init__(message + (f"; record {record}" if record is not None else ""), where=where)
        self.rule = rule
        self.record = record
        self.row = row

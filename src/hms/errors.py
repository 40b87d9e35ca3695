"""Error types shared by the core and the CLI.

Two families map to the exit codes promised to users: ``BadInput`` (exit 2: the
user gave us something we refuse, and nothing was changed) and ``CheckFailed``
(exit 1: the input was fine but a gate said no — a test, the budget, a scan).
Every error carries the place it is about so the one line we print points the
user at the file, field or line to fix.
"""

from __future__ import annotations

from typing import Any

MAX_SHOWN = 200  # characters of a value an error message echoes
MAX_MESSAGE = 2000  # backstop: no message is longer, whatever it quotes
MAX_WHERE = 500  # nor the place it names


def clip(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` for an error message, cut to ``limit`` characters and saying how long it was: ``99999… (5000 chars)``.

    The one helper every echoed value goes through: a hostile file must not flood stderr, a log or a
    422 with its own bytes (an 80k-key table once came back as 949 KB of error).
    """
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


def shown(value: Any, limit: int = MAX_SHOWN) -> str:
    """``repr(value)`` clipped (see ``clip``); an integer too long to print is described, not printed.

    A NumPy scalar shows as the Python value it holds (``'married'``, not ``np.str_('married')``).
    """
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    try:
        text = repr(value)
    except ValueError:  # int beyond sys.get_int_max_str_digits()
        return f"<an integer of {value.bit_length()} bits>"
    return clip(text, limit)


class HmsError(Exception):
    """Base class: a message and the place (file, JSON path, line) it concerns."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None) -> None:
        message = clip(message, MAX_MESSAGE)
        where = None if where is None else clip(where, MAX_WHERE)
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


class BadInputs(BadInput):
    """Several refusals at once (``problems``), for a caller who fixes a form in one go, not one field a try.

    The first problem is its message and place, so code that reports one error still reports what it did.
    """

    def __init__(self, problems: list[BadInput]) -> None:
        super().__init__(problems[0].message, where=problems[0].where)
        self.problems = tuple(problems)


class Problems:
    """Where a check puts what it refuses: raised at once (``collect=False``, the first-error API), or gathered
    and raised together by ``raise_any`` (``collect=True``)."""

    def __init__(self, collect: bool = False) -> None:
        self.collect = collect
        self.found: list[BadInput] = []

    def add(self, problem: BadInput) -> None:
        if not self.collect:
            raise problem
        self.found.extend(problem.problems if isinstance(problem, BadInputs) else [problem])

    def check(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)``, its BadInput added instead of raised (when collecting); None then."""
        try:
            return fn(*args)
        except BadInput as e:
            if not self.collect:
                raise
            self.add(e)
            return None

    def raise_any(self) -> None:
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            raise BadInputs(self.found)

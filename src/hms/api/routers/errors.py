"""How a core refusal reaches a client: its HTTP status and the exit code the CLI then returns."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hms.api.models import ErrorOut
from hms.errors import CheckFailed, HmsError
from hms.web.errors import WebError

RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "no valid Airflow token"},
    409: {"model": ErrorOut, "description": "a gate said no (the CLI exits 1)"},
    422: {"model": ErrorOut, "description": "bad input; nothing changed (the CLI exits 2)"},
}
# The clerk page's and ops view's routes also refuse a caller without the role, and a hash the registry lacks.
FORBIDDEN: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorOut, "description": "the caller's roles do not allow it (review role, scheduler, author)"},
}
UNKNOWN_BUNDLE: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorOut, "description": "no bundle with this sha256 in the registry"},
}


@contextmanager
def core_refusals() -> Iterator[None]:
    """BadInput → 422 (exit 2), CheckFailed → 409 (exit 1), each naming its field as the CLI names it."""
    try:
        yield
    except HmsError as e:
        status = 409 if isinstance(e, CheckFailed) else 422
        raise WebError(status, e.message, field=e.where, exit_code=e.exit_code) from None

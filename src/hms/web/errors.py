"""The one error type of the review web app: an HTTP status, a message, and the field it is about.

Routes and the auth dependency raise it; the app turns it into ``{"detail": …, "field": …}`` for the
REST API and into an escaped HTML page for the browser pages, so every refusal names what to fix.
"""

from __future__ import annotations

from hms.errors import BadInput, CheckFailed, HmsError


class WebError(Exception):
    """A refusal with its HTTP status (401, 403, 404, 409, 413, 422) and the request field it concerns."""

    def __init__(self, status: int, message: str, *, field: str | None = None, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        # What the CLI exits with when the API refuses: a failed gate 1, anything else the caller's input (2).
        self.exit_code = exit_code if exit_code is not None else (1 if status in (403, 409) else 2)

    def body(self) -> dict[str, object]:
        return {"detail": self.message, "field": self.field, "status": self.status, "exit_code": self.exit_code}


def from_core(e: HmsError, *, field: str, status_bad_input: int = 422) -> WebError:
    """A core refusal as a web one: bad input → 422 (or the given status), a failed gate → 409."""
    if isinstance(e, CheckFailed):
        return WebError(409, str(e), field=field)
    assert isinstance(e, BadInput | HmsError)
    return WebError(status_bad_input, str(e), field=field)

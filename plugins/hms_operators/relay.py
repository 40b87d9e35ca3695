"""An ``hms`` command's output in the task log: each line as it is written, at the level it deserves.

The task log is where ops look first, and they filter it by level: a ❌ line or an ``hms: error:`` logged
at INFO is invisible to them, and output collected until the command ends hides a chaos experiment's
progress for its whole window. So every complete line goes to the log the moment it exists, errors at
ERROR and warnings at WARNING. The command's own one-line failure (``hms: error: …``, printed last) is
held back rather than logged: it becomes the failed step's exception message (``HmsStepFailed``), so it
appears once, not twice.

``LineRelay`` is the writable stream (in-process commands write to it); ``relay_process`` feeds a
subprocess's output through one, line by line.
"""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from airflow.sdk.exceptions import AirflowFailException

FAILURE_PREFIX = "hms: error: "
_ERROR = re.compile(r"❌|^(hms: )?error:|^ROLLBACK FAILED|^Traceback \(most recent call last\)", re.IGNORECASE)
_WARNING = re.compile(r"⚠|^(hms: )?warning:|\] not recorded as evidence:", re.IGNORECASE)


class HmsStepFailed(AirflowFailException):
    """A step whose ``hms`` command failed; the message is the command's own error line.

    A subclass of AirflowFailException: running the same check again gives the same answer, so no retry.
    Raise it ``from None``: the hms error already says what went wrong and where, a chained traceback
    of the relay's internals says nothing more (``debugging()`` keeps the chain).
    """


def debugging(logger: logging.Logger | None = None) -> bool:
    """Whether tracebacks are wanted: ``HMS_DEBUG=1`` in the environment, or the log level is DEBUG."""
    from hms.cli import debugging as hms_debugging

    if hms_debugging():
        return True
    return (logger or logging.getLogger("hms_operators")).isEnabledFor(logging.DEBUG)


def level_of(line: str) -> int:
    """The log level of one output line: ERROR for ❌ and error lines, WARNING for warnings, else INFO."""
    text = line.strip()
    if _ERROR.search(text):
        return logging.ERROR
    if _WARNING.search(text):
        return logging.WARNING
    return logging.INFO


class LineRelay(io.TextIOBase):
    """A text stream that logs each complete line as it is written (``redirect_stdout`` target).

    Writes from several threads are serialized; a partial line waits for its newline (or ``close``). A write
    made by the logging itself (a handler that prints to whatever ``sys.stderr`` is now, like logging's last
    resort, while this stream is it) goes to ``fallback``, the stream of before: no loop, no deadlock.
    ``failure`` is the last ``hms: error:`` line, without its prefix, which is not logged (see module doc);
    ``error_lines`` the ERROR lines, ``tail`` the last lines (for an audit entry that must say what happened).
    """

    def __init__(self, logger: Any, fallback: TextIO | None = None) -> None:
        super().__init__()
        self.logger = logger
        self.fallback = fallback if fallback is not None else sys.__stderr__
        self._emitting = threading.local()
        self.failure: str | None = None
        self.error_lines: list[str] = []
        self.tail: deque[str] = deque(maxlen=40)
        self._partial = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if getattr(self._emitting, "on", False):
            if self.fallback is not None:
                self.fallback.write(s)
            return len(s)
        with self._lock:
            self._partial += s
            *lines, self._partial = self._partial.split("\n")
            for line in lines:
                self._line(line)
        return len(s)

    def close(self) -> None:
        with self._lock:
            if self._partial:
                self._line(self._partial)
                self._partial = ""
        super().close()

    def _line(self, line: str) -> None:
        line = line.rstrip("\r")
        if not line.strip():
            return
        self.tail.append(line)
        if line.startswith(FAILURE_PREFIX):
            if self.failure is not None:  # an earlier one was not the last: it is output like any other
                self._log(logging.ERROR, FAILURE_PREFIX + self.failure)
            self.failure = line[len(FAILURE_PREFIX):]
            return
        level = level_of(line)
        if level == logging.ERROR:
            self.error_lines.append(line)
        self._log(level, line)

    def _log(self, level: int, line: str) -> None:
        # By method name: an operator's ``self.log`` is a structlog logger, the steps' a stdlib one.
        self._emitting.on = True
        try:
            getattr(self.logger, logging.getLevelName(level).lower())("%s", line)
        finally:
            self._emitting.on = False

    def release_failure(self) -> None:
        """Log a held failure line after all (the command succeeded anyway, so no exception will carry it)."""
        if self.failure is not None:
            self._log(logging.ERROR, FAILURE_PREFIX + self.failure)
            self.failure = None


@dataclass(frozen=True)
class Finished:
    """How a relayed subprocess ended: its exit code, its failure line (if any), its ERROR and last lines."""

    returncode: int
    failure: str | None
    errors: tuple[str, ...]
    tail: tuple[str, ...]
    timed_out: bool = False

    @property
    def reason(self) -> str:
        """The one line that says why it failed: its hms error, else its last ERROR line, else its last line."""
        last = self.failure or (self.errors[-1] if self.errors else self.tail[-1] if self.tail else "no output")
        return f"{last} (timed out)" if self.timed_out else last


def relay_process(
    argv: Sequence[str], logger: Any, *, env: Mapping[str, str] | None = None, timeout: float = 300
) -> Finished:
    """Run ``argv`` and log its stdout and stderr (interleaved, as written) line by line while it runs.

    ``timeout`` seconds after the start the process is killed; what it wrote until then is in the log.
    """
    proc = subprocess.Popen(
        list(argv), env=dict(env) if env is not None else None, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, encoding="utf-8", errors="replace",
        bufsize=1,
    )
    killed = threading.Event()

    def _kill() -> None:
        killed.set()
        proc.kill()

    timer = threading.Timer(timeout, _kill)
    timer.daemon = True
    timer.start()
    relay = LineRelay(logger)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # one line as soon as the process has written it
            relay.write(line)
        code = proc.wait()
    finally:
        timer.cancel()
        relay.close()
    if code == 0:
        relay.release_failure()
    return Finished(code, relay.failure, tuple(relay.error_lines), tuple(relay.tail), killed.is_set())

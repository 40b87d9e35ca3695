"""Progress of a long simulation: a bar on a terminal, plain lines in a task log.

Nothing is shown for a run that ends within ``AFTER`` seconds (most do): a bar that flashes by is noise.
Past that, a terminal gets one redrawn line (``\\r``) at most ``REDRAWS`` times a second, with the rate
and the time left; a log (stderr not a terminal: an Airflow task's log) gets a line per ``STEP`` of the
rows, or every ``LOG_EVERY`` seconds when the total is unknown (a CSV file is counted only as it is read).
The timer is injected so the tests drive it; it measures durations only, never a date.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

AFTER = 2.0
REDRAWS = 10
STEP = 0.10
LOG_EVERY = 10.0
WIDTH = 24


class Progress:
    """``progress(done, total)``: called after each chunk; ``total`` None when not known yet."""

    def __init__(
        self, what: str, stream: TextIO, *, tty: bool, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self.what = what
        self.stream = stream
        self.tty = tty
        self.timer = timer
        self.started = timer()
        self.shown_at = float("-inf")
        self.logged_step = 0

    def __call__(self, done: int, total: int | None) -> None:
        now = self.timer()
        elapsed = now - self.started
        finished = total is not None and done >= total
        if elapsed < AFTER:
            return
        if self.tty:
            if finished or now - self.shown_at >= 1 / REDRAWS:
                self.stream.write("\r" + self._line(done, total, elapsed, bar=True) + ("\n" if finished else ""))
                self.stream.flush()
                self.shown_at = now
            return
        step = int(min(1.0, done / total) / STEP + 1e-9) if total else 0
        if (step > self.logged_step) if total else (now - self.shown_at >= LOG_EVERY):
            self.stream.write(self._line(done, total, elapsed, bar=False) + "\n")
            self.stream.flush()
            self.shown_at, self.logged_step = now, step

    def _line(self, done: int, total: int | None, elapsed: float, *, bar: bool) -> str:
        rate = done / elapsed if elapsed > 0 else 0.0
        if not total:
            return f"[{self.what}] {done:,} rows · {elapsed:.1f} s · {rate / 1e6:.1f}M rows/s"
        share = min(1.0, done / total)
        left = (total - done) / rate if rate > 0 else 0.0
        drawn = ""
        if bar:
            full = round(share * WIDTH)
            drawn = "█" * full + "░" * (WIDTH - full) + " "
        return (
            f"[{self.what}] {drawn}{100 * share:5.1f} % of {total:,} rows · {elapsed:.1f} s"
            + (f" · ~{left:.0f} s left" if done < total else f" · {rate / 1e6:.1f}M rows/s")
        )

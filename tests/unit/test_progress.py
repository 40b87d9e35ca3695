"""Progress: silent for short runs, a redrawn bar on a terminal, a line per tenth in a log."""

from __future__ import annotations

import io

from hms.progress import Progress


class Timer:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _run(tty: bool, total: int | None, times: list[float], step: int) -> str:
    out, timer = io.StringIO(), Timer()
    p = Progress("simulate", out, tty=tty, timer=timer)
    for i, t in enumerate(times, start=1):
        timer.t = t
        p(i * step, total)
    return out.getvalue()


def test_a_run_shorter_than_two_seconds_shows_nothing():
    assert _run(True, 100, [0.1 * i for i in range(1, 11)], 10) == ""
    assert _run(False, 100, [0.1 * i for i in range(1, 11)], 10) == ""


def test_a_long_run_on_a_terminal_redraws_one_line_and_ends_it():
    text = _run(True, 1000, [0.5 * i for i in range(1, 101)], 10)
    assert text.count("\n") == 1 and text.endswith("100.0 % of 1,000 rows · 50.0 s · 0.0M rows/s\n")
    assert "░" in text and "s left" in text  # the bar, and the time left before the end
    assert text.count("\r") <= 100


def test_a_long_run_in_a_log_writes_a_line_per_tenth_once_past_two_seconds():
    lines = _run(False, 100, [0.5 * i for i in range(1, 101)], 1).splitlines()
    assert [line.split("%")[0].split("]")[1].strip() for line in lines] == [
        "10.0", "20.0", "30.0", "40.0", "50.0", "60.0", "70.0", "80.0", "90.0", "100.0"]
    assert "\r" not in "".join(lines) and "█" not in "".join(lines)


def test_an_unknown_total_is_logged_by_rows_every_ten_seconds():
    lines = _run(False, None, [1.0 * i for i in range(1, 31)], 1000).splitlines()
    assert len(lines) == 3 and lines[0].startswith("[simulate] 2,000 rows") and lines[1].startswith("[simulate] 12,000")

"""An hms command's output in the Airflow task log: streamed, at its level, each line once, one-line failures.

The subprocess tests run a real process (a tiny ``python -c`` script standing in for hms), not a mock: the
point is what arrives through a pipe, and when.
"""

from __future__ import annotations

import logging
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from hms_operators import relay as relay_mod
from hms_operators.relay import HmsStepFailed, LineRelay, level_of, relay_process
from hms_operators.steps import HmsCommandOperator, run_hms


class Recorder(logging.Handler):
    """Every record, and a hook run as each one arrives (to prove a line came while the process still ran)."""

    def __init__(self, on_record: object = None) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.on_record = on_record

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if callable(self.on_record):
            self.on_record(record)

    def lines(self, level: int | None = None) -> list[str]:
        return [r.getMessage() for r in self.records if level is None or r.levelno == level]


@pytest.fixture
def recorder(request: pytest.FixtureRequest) -> tuple[logging.Logger, Recorder]:
    logger = logging.getLogger(f"test.relay.{request.node.name}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    rec = Recorder()
    logger.addHandler(rec)
    yield logger, rec
    logger.removeHandler(rec)


def _script(body: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(body)]


def test_lines_of_a_running_process_reach_the_log_before_it_ends(recorder, tmp_path: Path):
    logger, rec = recorder
    go = tmp_path / "go"
    # The script waits for the log to have its first line before it writes the second: collected-at-the-end
    # output would leave it waiting, and it then says so at ERROR and exits 1.
    rec.on_record = lambda r: go.touch() if r.getMessage() == "[chaos] round 1" else None
    argv = _script(f"""
        import pathlib, sys, time
        print("[chaos] round 1", flush=True)
        deadline = time.monotonic() + 20
        while not pathlib.Path({str(go)!r}).exists():
            if time.monotonic() > deadline:
                print("❌ the first line never reached the log", flush=True)
                sys.exit(1)
            time.sleep(0.01)
        print("[chaos] round 2", flush=True)
    """)
    done = relay_process(argv, logger, timeout=60)
    assert done.returncode == 0, rec.lines()
    assert rec.lines() == ["[chaos] round 1", "[chaos] round 2"]


def test_error_and_warning_lines_are_logged_at_their_levels_and_each_line_once(recorder):
    logger, rec = recorder
    argv = _script("""
        import sys
        print("[test] ✅ 9 tests", flush=True)
        print("[chaos] ❌ hypothesis failed: 3 wrong answer(s)", flush=True)
        print("warning: the window is shorter than the pipeline's", file=sys.stderr, flush=True)
        print("[scan] not recorded as evidence: run with only the rule sets privacy", file=sys.stderr, flush=True)
        print("hms: error: chaos: the hypothesis failed", file=sys.stderr, flush=True)
        sys.exit(1)
    """)
    done = relay_process(argv, logger, timeout=60)
    assert done.returncode == 1
    assert rec.lines(logging.INFO) == ["[test] ✅ 9 tests"]
    assert rec.lines(logging.ERROR) == ["[chaos] ❌ hypothesis failed: 3 wrong answer(s)"]
    assert rec.lines(logging.WARNING) == [
        "warning: the window is shorter than the pipeline's",
        "[scan] not recorded as evidence: run with only the rule sets privacy",
    ]
    # The command's own failure line is the step's exception message, so it is not in the log as well.
    assert done.failure == "chaos: the hypothesis failed" and done.reason == "chaos: the hypothesis failed"
    assert len(rec.lines()) == len(set(rec.lines())) == 4


def test_a_process_past_its_timeout_is_killed_and_says_so(recorder):
    logger, rec = recorder
    argv = _script("""
        import time
        print("started", flush=True)
        time.sleep(30)
    """)
    done = relay_process(argv, logger, timeout=1)
    assert done.timed_out and done.returncode != 0
    assert done.reason == "started (timed out)" and rec.lines() == ["started"]


def test_a_partial_line_waits_for_its_newline_and_a_last_unterminated_one_is_logged_on_close(recorder):
    logger, rec = recorder
    out = LineRelay(logger)
    out.write("[chaos] killed ")
    assert rec.lines() == []
    out.write("r1, r2\n[chaos] steady")
    assert rec.lines() == ["[chaos] killed r1, r2"]
    out.write(" state after: ❌")
    out.close()
    assert rec.lines(logging.ERROR) == ["[chaos] steady state after: ❌"]


def test_a_failure_line_of_a_command_that_succeeded_anyway_is_still_logged_once(recorder):
    logger, rec = recorder
    done = relay_process(_script('print("hms: error: recovered")'), logger, timeout=60)
    assert done.returncode == 0 and rec.lines(logging.ERROR) == ["hms: error: recovered"]


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("[deploy] staging ✅ preprod ❌", logging.ERROR),
        ("error: registry unreachable", logging.ERROR),
        ("ROLLBACK FAILED for run r1", logging.ERROR),
        ("⚠ no population for this protocol", logging.WARNING),
        ("[comp] ✅ privacy(0) ethics(0) legal(0)", logging.INFO),
        ("the error budget is fine", logging.INFO),
    ],
)
def test_the_level_of_a_line_follows_its_marks(line: str, level: int):
    assert level_of(line) == level


def test_a_failed_step_ends_in_one_line_naming_the_hms_error_without_a_chained_traceback(caplog):
    caplog.set_level(logging.INFO, logger="hms_operators.steps")
    op = HmsCommandOperator(task_id="push", arguments=["rule", "push", "/nowhere/p.yml"])
    with pytest.raises(HmsStepFailed) as failed:
        op.execute({})
    message = str(failed.value)
    assert message == "hms rule push /nowhere/p.yml: /nowhere/p.yml: cannot read: No such file or directory"
    assert failed.value.__cause__ is None and failed.value.__suppress_context__
    # The error is the exception's message and nowhere else in the log.
    assert not [r for r in caplog.records if "cannot read" in r.getMessage()]


def test_run_hms_returns_the_error_line_for_callers_that_go_on(caplog):
    run = run_hms(["rule", "push", "/nowhere/p.yml"])
    assert run.code == 2 and run.result is None
    assert run.failure == "/nowhere/p.yml: cannot read: No such file or directory"


def test_hms_debug_brings_the_traceback_of_a_handled_error_back(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="hms_operators.steps")
    monkeypatch.setenv("HMS_DEBUG", "1")
    assert relay_mod.debugging()
    run = run_hms(["rule", "push", "/nowhere/p.yml"])
    assert run.code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "Traceback (most recent call last):" in errors


def test_without_hms_debug_a_bug_in_hms_is_one_line_and_with_it_the_exception_itself(monkeypatch, caplog):
    import hms.cli

    def broken(argv: object) -> int:
        raise KeyError("members")

    monkeypatch.setattr(hms.cli, "main", broken)
    monkeypatch.delenv("HMS_DEBUG", raising=False)
    caplog.set_level(logging.INFO, logger="hms_operators.steps")
    run = run_hms(["policy", "test", "x"])
    assert run.code == 70 and run.failure.startswith("internal error: KeyError: 'members'")
    monkeypatch.setenv("HMS_DEBUG", "1")
    with pytest.raises(KeyError):
        run_hms(["policy", "test", "x"])


def test_a_handler_that_writes_to_the_redirected_stderr_neither_loops_nor_deadlocks(tmp_path: Path):
    import contextlib
    import io

    logger = logging.getLogger("test.relay.last_resort")
    logger.propagate = False  # no handlers: logging's last resort prints to sys.stderr as it is at that moment
    before = io.StringIO()
    out = LineRelay(logger, fallback=before)
    def write() -> None:
        with contextlib.redirect_stderr(out):
            out.write("[chaos] ❌ steady state after\n")

    writer = threading.Thread(target=write, daemon=True)  # a deadlock fails the test instead of hanging it
    writer.start()
    writer.join(10)
    assert not writer.is_alive(), "the relay deadlocked on its own logging"
    assert before.getvalue() == "[chaos] ❌ steady state after\n"

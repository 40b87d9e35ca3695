"""The shifted-clock tiers' wall clock: imported by every Python process they start (it is on PYTHONPATH).

``HMS_TEST_CLOCK_SHIFT`` (``400d``, ``5y``) moves the wall clock — ``time.time``, ``datetime.now``,
``date.today``, ``CLOCK_REALTIME`` — that far ahead with time-machine, in the test process and in every
``hms`` command, decision service and chaos replica it starts, while the monotonic clock that timeouts and
sleeps use keeps real time. (libfaketime moves whole processes too, but with Python 3.11 it either hangs
every timed wait, when it fakes the monotonic clock, or makes ``time.sleep`` fail with EINVAL, when it
does not.) Test tooling only: nothing in src/ reads this variable.
"""

import os
import re

_shift = os.environ.get("HMS_TEST_CLOCK_SHIFT", "")
if _shift:
    from datetime import UTC, datetime, timedelta

    import time_machine

    _m = re.fullmatch(r"\+?(\d+)([dy])", _shift)
    if not _m:
        raise SystemExit(f"HMS_TEST_CLOCK_SHIFT={_shift!r}: use N d (days) or N y (years), e.g. 400d, 5y")
    _days = int(_m.group(1)) * (365 if _m.group(2) == "y" else 1)
    _travel = time_machine.travel(datetime.now(UTC) + timedelta(days=_days), tick=True)
    _travel.start()
    # time-machine starts the ticking at the first reading, not at start(): read it now, or a process that
    # takes a second to import its first clock reader (pytest) lags its children by that second.
    import time

    time.time()

"""Where ``HMS_HOME`` is, with ``os`` alone: the ``hms`` script asks before it imports anything else."""

from __future__ import annotations

import os


def path() -> str:
    return os.environ.get("HMS_HOME") or os.path.join(os.path.expanduser("~"), ".hms")

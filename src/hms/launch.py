"""The ``hms`` script and ``python -m hms``: a resident simulator's, when one runs the command; else this process's.

Only the standard library is imported before the hand-off (hms.resident.client): a ``policy simulate``
handed to a resident costs the caller an interpreter's start and a socket, not NumPy's and Arrow's import.
"""

from __future__ import annotations

import sys


def run() -> None:
    from hms.resident.client import hand_off

    code = hand_off(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from hms.cli import run as here

    here()

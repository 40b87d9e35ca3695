"""``python -m hms``: the same command line as the ``hms`` script (used to start child processes portably)."""

from hms.launch import run

run()

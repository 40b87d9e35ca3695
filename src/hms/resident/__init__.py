"""A resident simulator: ``hms policy simulate`` forked from a process that has already imported everything.

An analyst iterating on a reform runs ``hms policy simulate`` again and again; each fresh process spends
~0.6 s importing NumPy, Arrow and the command's modules before it reads a row, several times the
simulation of a million households. ``hms simulator start`` leaves one process behind (per ``HMS_HOME``)
that has paid for those imports once. The ``hms`` script hands a ``policy simulate`` call to it over a
Unix socket with its own standard streams, working directory, environment and umask; the resident forks,
and the child runs the command exactly as a fresh process would, writing straight to the caller's
terminal. What is shared is only imported code: every run is its own process, its exit status the
caller's. This is the zygote of Android and the daemon of Gradle, kept to one read-only command.

Trust: the socket lives in ``HMS_HOME/run`` (0700) and each side checks the other's uid (SO_PEERCRED),
so only its owner can hand it a command; it refuses anything but ``policy simulate``; and when its
sources or the installed packages change it refuses and exits, and the caller runs the command itself.
"""

"""What the ``hms`` script and the resident simulator say to each other, and where.

The caller's side imports nothing but C modules (``_socket``, ``_json``): its imports are the whole cost
of a hand-off. A request is one JSON line with the caller's argv, working directory, environment, umask,
interpreter and package, and for a run its three standard streams beside it (SCM_RIGHTS). A run is
answered with text lines — ``pid N``, then ``exit N`` when the child ends, or ``refused WHY`` — and a
control request (``status``, ``stop``) with one JSON line.
"""

from __future__ import annotations

import os
import sys
from _json import encode_basestring_ascii as _quote

SERVED = (("policy", "simulate"),)  # the commands it runs: read-only ones, whose time is mostly imports
SOCKET_NAME = "simulator.sock"
MAX_PATH = 100  # sun_path holds 108 bytes; a deeper HMS_HOME has no resident (the script runs the command)
MAX_MESSAGE = 1 << 20
TYPE_CHECKING = False  # typing itself costs the caller 8 ms
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any
PEERCRED_SIZE = 12  # struct ucred: pid, uid, gid as C ints


def run_dir(home: str) -> str:
    return os.path.join(home, "run")


def socket_path(home: str) -> str:
    return os.path.join(run_dir(home), SOCKET_NAME)


def served(argv: list[str]) -> bool:
    return any(argv[: len(c)] == list(c) for c in SERVED) and not ({"-h", "--help"} & set(argv))


def interpreter() -> str:
    """Which Python and which environment (a venv's ``python`` and ``python3.11`` are one; two venvs on one
    interpreter are not)."""
    return f"{os.path.realpath(sys.executable)}|{sys.prefix}"


def package_dir() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def request(op: str, argv: list[str] | None = None) -> bytes:
    """This process's request, as JSON (built with the C encoder: the ``json`` package costs the caller 3 ms)."""
    mask = os.umask(0)
    os.umask(mask)
    env = ",".join(f"{_quote(k)}:{_quote(v)}" for k, v in os.environ.items())
    fields = [f'"op":{_quote(op)}', f'"argv":[{",".join(_quote(a) for a in argv or [])}]',
              f'"cwd":{_quote(os.getcwd())}', f'"env":{{{env}}}', f'"umask":{mask}',
              f'"executable":{_quote(interpreter())}', f'"package":{_quote(package_dir())}']
    return ("{" + ",".join(fields) + "}\n").encode()


def line(kind: str, text: Any = "") -> bytes:
    return f"{kind} {text}\n".encode()


def lines(sock: Any) -> Iterator[tuple[str, str]]:
    """The ``(kind, text)`` lines on ``sock`` until it closes."""
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            one, buf = buf.split(b"\n", 1)
            kind, _, text = one.decode().partition(" ")
            yield kind, text


def peer_uid(sock: Any) -> int:
    """The uid of the process at the other end, as the kernel says (Linux SO_PEERCRED)."""
    import _socket

    creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, PEERCRED_SIZE)
    return int.from_bytes(creds[4:8], sys.byteorder)

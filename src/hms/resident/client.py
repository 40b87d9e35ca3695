"""The caller's side: hand ``hms policy simulate`` to a resident simulator, or say there is none.

``hand_off`` returns the command's exit status when a resident ran it, or ``None`` when none can (no
socket, a stale one, another user's, one that refuses because its sources changed), and the script runs
the command itself. C modules only: this runs before anything else in every ``hms`` call.
"""

from __future__ import annotations

import _signal
import _socket
import os
import sys

from hms import home
from hms.resident import wire

FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def connect(h: str) -> Any:
    """A connection to ``h``'s resident, checked to belong to this user; ``None`` when there is none."""
    path = wire.socket_path(h)
    if len(path) > wire.MAX_PATH or not os.path.exists(path):
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
        if wire.peer_uid(sock) != os.getuid():
            raise ConnectionRefusedError("another user's socket")
    except OSError:
        sock.close()
        return None
    return sock


def hand_off(argv: list[str]) -> int | None:
    if not wire.served(argv) or os.environ.get("HMS_RESIDENT", "").lower() in {"0", "off", "no"}:
        return None
    sock = connect(home.path())
    if sock is None:
        return None
    try:
        fds = (0, 1, 2)
        sock.sendmsg([wire.request("run", argv)],
                     [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds))])
        replies = wire.lines(sock)
        kind, text = next(replies, ("", ""))
        if kind != "pid":  # rare (a changed source, another venv): worth a line, and the command still runs
            print(f"hms: the resident simulator did not take this ({text or 'no answer'}); running it here",
                  file=sys.stderr)
            return None
        pid = int(text)
        for sig in FORWARDED:  # Ctrl-C reaches this process's group; the run is the resident's child
            _signal.signal(sig, lambda s, _f: os.kill(pid, s))
        for kind, text in replies:
            if kind == "exit":
                return int(text)
    finally:
        sock.close()
    print("hms: the resident simulator ended without the command's exit status", file=sys.stderr)
    return 1


def request(h: str, op: str) -> dict | None:
    """A control request (``status``, ``stop``) and its one JSON answer; ``None`` when no resident answers."""
    import json

    sock = connect(h)
    if sock is None:
        return None
    try:
        sock.sendall(wire.request(op))
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        return json.loads(data)
    finally:
        sock.close()

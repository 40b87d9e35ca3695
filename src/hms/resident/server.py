"""The resident simulator's process: import once, keep a warmed spare child, hand it each command.

One thread and one selector: the listening socket, a wake-up pipe for SIGCHLD and the spare's socket. A
request is checked (the peer's uid, the command, the interpreter and package, unchanged sources) and
handed, with the caller's three streams, to the spare — a child forked after the imports that has already
done a first run's work (hms.resident.warmup) — which becomes the caller's process and runs the command
once, as ``hms.cli`` would; then it exits and a new spare is warmed once no command runs. Each command is
its own process; what it shares with the others is imported code. The resident reports each exit status
from ``waitpid``, so a child killed by a signal still gets the caller an honest one (128 + the signal).
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hms.resident import wire

# What a ``policy simulate`` imports, whether eagerly or on first use: imported here, once.
PRELOAD = (
    "numpy", "pyarrow", "pyarrow.parquet", "pyarrow.csv", "pyarrow.compute",
    "hms.cli", "hms.cli.policy", "hms.simulate", "hms.population", "hms.population_stream", "hms.progress",
    "hms.fairness_groups", "hms.person_table", "hms.schema_check", "hms.registry.location", "hms.bundle",
    "hms.protocol", "hms.resident.warmup", "concurrent.futures.thread", "queue",
    "hms.deployments", "hms.report",  # the default baseline (prod's live version) and --report
)
DEFAULT_IDLE = 30 * 60.0
SPARE_FAILURES = 3  # spares that die warming before the resident forks cold children instead


@dataclass(frozen=True)
class Fingerprint:
    """What the children would run: a caller whose interpreter or package differs runs the command itself."""

    executable: str
    package: str
    sources: tuple[tuple[str, int], ...]  # every imported hms module's file and its mtime
    site: tuple[tuple[str, int], ...]  # the directories packages are installed in: pip changes their mtime

    @classmethod
    def now(cls) -> Fingerprint:
        hms_files = sorted({m.__file__ for name, m in list(sys.modules.items())
                            if (name == "hms" or name.startswith("hms.")) and getattr(m, "__file__", None)})
        sites = sorted({p for p in sys.path if p.endswith("site-packages") and os.path.isdir(p)})
        return cls(wire.interpreter(), wire.package_dir(), _mtimes(hms_files), _mtimes(sites))

    def stale(self) -> str | None:
        """Why a child of this process would not run what a fresh process would, or ``None``."""
        if _mtimes([f for f, _ in self.sources]) != self.sources:
            return "its hms sources changed since it started"
        if _mtimes([d for d, _ in self.site]) != self.site:
            return "the installed packages changed since it started"
        return None


def _mtimes(paths: list[str]) -> tuple[tuple[str, int], ...]:
    out = []
    for p in paths:
        try:
            out.append((p, os.stat(p).st_mtime_ns))
        except OSError:
            out.append((p, -1))
    return tuple(out)


def preload() -> float:
    """Import what a run imports; the seconds it took. The collector then sets it all aside (gc.freeze), so
    no child's collection walks (and copies) the resident's pages."""
    from importlib import import_module

    from hms.arrow_memory import keep_freed_pages

    t = time.perf_counter()
    keep_freed_pages()  # before pyarrow's import, as a fresh simulate process does (hms.population_stream)
    gc.disable()
    for name in PRELOAD:
        import_module(name)
    from hms.cli import build_parser

    build_parser(["hms.cli.policy"])
    gc.freeze()
    gc.enable()
    return time.perf_counter() - t


@dataclass
class Run:
    """A caller's request waiting for a child: its connection, the request as sent and its three streams."""

    caller: socket.socket
    raw: bytes
    fds: list[int]


@dataclass
class Child:
    """A forked child and its control socket: a spare (no caller yet) says ``ready`` when warm; a run says
    ``done`` once its caller has the exit status, so the next spare warms while it is still exiting."""

    ctl: socket.socket
    caller: socket.socket | None = None
    ready: bool = False
    busy: bool = False


@dataclass
class Resident:
    home: Path
    idle: float = DEFAULT_IDLE
    procs: dict[int, Child] = field(default_factory=dict)
    pending: list[Run] = field(default_factory=list)
    spare_failures: int = 0
    started: float = field(default_factory=time.time)
    preload_seconds: float = 0.0
    runs: int = 0
    stopping: bool = False

    @property
    def path(self) -> Path:
        return Path(wire.socket_path(str(self.home)))

    def serve(self) -> int:
        if not self._lock():
            print(f"[simulator] another resident holds {self.home}: leaving it be", flush=True)
            return 0
        self.preload_seconds = preload()
        self.fingerprint = Fingerprint.now()
        self.listener = self._listen()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listener, selectors.EVENT_READ, None)
        self.sel.register(wake_r, selectors.EVENT_READ, None)
        last = time.monotonic()
        print(f"[simulator] resident pid {os.getpid()} at {self.path}; imports took "
              f"{self.preload_seconds * 1000:.0f} ms", flush=True)
        self._place()
        try:
            while not (self.stopping and not self._running()):
                for key, _ in self.sel.select(timeout=1.0):
                    if key.fileobj == wake_r:
                        os.read(wake_r, 4096)
                    elif key.data is not None:
                        self._child_says(key.data)
                    else:
                        self._accept()
                        last = time.monotonic()
                self._reap()
                self._place()
                if not self._running() and not self.pending and time.monotonic() - last > self.idle:
                    print(f"[simulator] idle for {self.idle:.0f} s: exiting", flush=True)
                    self.stop()
        finally:
            self.stop()
            self.listener.close()
            if self.path.exists():
                self.path.unlink()
        return 0

    def stop(self) -> None:
        self.stopping = True
        spare = self._spare()
        if spare is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(spare, signal.SIGTERM)

    def _running(self) -> list[int]:
        return [pid for pid, c in self.procs.items() if c.caller is not None]

    def _spare(self) -> int | None:
        return next((pid for pid, c in self.procs.items() if c.caller is None), None)

    def _lock(self) -> bool:
        """One resident per HMS_HOME, held for its lifetime (two `hms simulator start` at once: the second
        leaves, and its caller finds the first)."""
        import fcntl

        run = Path(wire.run_dir(str(self.home)))
        run.mkdir(parents=True, exist_ok=True)
        os.chmod(run, 0o700)
        self.lock_file = open(run / "simulator.lock", "w")  # noqa: SIM115 - held open until the process ends
        try:
            fcntl.flock(self.lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _listen(self) -> socket.socket:
        """The socket, in the run directory ``_lock`` made (0700)."""
        if len(str(self.path)) > wire.MAX_PATH:
            raise SystemExit(f"hms: error: {self.path}: too long for a Unix socket ({wire.MAX_PATH} characters)")
        if self.path.exists():
            self.path.unlink()  # `hms simulator start` checked that nothing answers on it
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        sock.listen(16)
        return sock

    # requests

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        fds: list[int] = []
        try:
            if wire.peer_uid(conn) != os.getuid():
                conn.close()
                return
            raw, fds = _receive(conn)
            self._answer(conn, raw, fds)
        except Exception as e:  # a malformed request ends that connection, never the resident
            _close(fds)
            _try_send(conn, wire.line("refused", f"bad request: {e}"))
            conn.close()

    def _answer(self, conn: socket.socket, raw: bytes, fds: list[int]) -> None:
        req = json.loads(raw)
        op = req.get("op")
        if op == "status":
            conn.sendall(json.dumps(self.status()).encode() + b"\n")
            conn.close()
        elif op == "stop":
            self.stop()
            conn.sendall(json.dumps({"stopping": True, "pid": os.getpid(), "running": len(self._running())}).encode()
                         + b"\n")
            conn.close()
        elif op == "run":
            why = "it is stopping" if self.stopping else self._refusal(req, fds)
            if why:
                _close(fds)
                conn.sendall(wire.line("refused", why))
                conn.close()
                return
            self.pending.append(Run(conn, raw, fds))
            self._place()
        else:
            raise ValueError(f"unknown op {op!r}")

    def _refusal(self, req: dict[str, Any], fds: list[int]) -> str | None:
        if len(fds) != 3:
            return "a run needs the caller's three standard streams"
        if not wire.served(list(req.get("argv", []))):
            return "it runs only " + ", ".join(" ".join(c) for c in wire.SERVED)
        if (req.get("executable"), req.get("package")) != (self.fingerprint.executable, self.fingerprint.package):
            return "another interpreter or hms package than the caller's"
        why = self.fingerprint.stale()
        if why:
            self.stop()  # a resident that can no longer serve leaves; `hms simulator start` makes a new one
        return why

    # children

    def _place(self) -> None:
        """Each waiting run to the warm spare, or, when none is warm yet, to a child forked now (never made to
        wait for a spare); a new spare warms once no run is busy, so it never takes a core from one."""
        while self.pending:
            r = self.pending.pop(0)
            spare = self._spare()
            if spare is not None and self.procs[spare].ready:
                self._hand(spare, r)
            else:
                self._fork_run(r)
        busy = any(c.busy for c in self.procs.values())
        if self._spare() is None and not busy and not self.stopping and self.spare_failures < SPARE_FAILURES:
            self._fork_spare()

    def _inherited(self) -> list[int]:
        """The resident's descriptors no child may keep: its lock, the listener, every caller's and control
        socket."""
        socks: list[socket.socket] = [self.listener, *(r.caller for r in self.pending)]
        for c in self.procs.values():
            socks += [c.ctl] + ([c.caller] if c.caller is not None else [])
        return [self.lock_file.fileno(), *(s.fileno() for s in socks if s.fileno() >= 0)]

    def _fork(self, body: Any) -> tuple[int, socket.socket]:
        ours, theirs = socket.socketpair()
        pid = _fork(lambda: body(theirs), [*self._inherited(), ours.fileno()])
        theirs.close()
        self.sel.register(ours, selectors.EVENT_READ, pid)
        return pid, ours

    def _fork_spare(self) -> None:
        run_dir = Path(wire.run_dir(str(self.home)))
        pid, ctl = self._fork(lambda theirs: _spare(theirs, run_dir))
        self.procs[pid] = Child(ctl)

    def _fork_run(self, r: Run) -> None:
        fds = [*r.fds, r.caller.fileno()]
        pid, ctl = self._fork(lambda theirs: _run(json.loads(r.raw), fds, theirs))
        _close(r.fds)
        self._started(pid, Child(ctl), r)

    def _hand(self, pid: int, r: Run) -> None:
        child = self.procs[pid]
        socket.send_fds(child.ctl, [r.raw], [*r.fds, r.caller.fileno()])
        _close(r.fds)
        self._started(pid, child, r)

    def _started(self, pid: int, child: Child, r: Run) -> None:
        child.caller, child.busy = r.caller, True
        self.procs[pid] = child
        self.runs += 1
        _try_send(r.caller, wire.line("pid", pid))

    def _child_says(self, pid: int) -> None:
        child = self.procs.get(pid)
        if child is None:
            return
        said = child.ctl.recv(64)
        if said.startswith(b"ready"):
            child.ready = True
            self.spare_failures = 0
        elif said.startswith(b"done") or not said:
            child.busy = False
            if not said:
                self.sel.unregister(child.ctl)
                if child.caller is None and not self.stopping:
                    self.spare_failures += 1
                    print(f"[simulator] a spare died while warming ({self.spare_failures} of {SPARE_FAILURES})",
                          flush=True)
        self._place()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.procs.pop(pid, None)
            if child is None:
                continue
            if child.ctl.fileno() >= 0:
                with contextlib.suppress(KeyError, ValueError):
                    self.sel.unregister(child.ctl)
                child.ctl.close()
            if child.caller is not None:  # it said the status itself unless it died before: say it again
                code = os.waitstatus_to_exitcode(status)
                _try_send(child.caller, wire.line("exit", code if code >= 0 else 128 - code))
                child.caller.close()

    def status(self) -> dict[str, Any]:
        spare = self._spare()
        return {"pid": os.getpid(), "socket": str(self.path), "since": self.started, "runs": self.runs,
                "running": len(self._running()), "spare_ready": spare is not None and self.procs[spare].ready,
                "stopping": self.stopping,
                "preload_ms": round(self.preload_seconds * 1000), "idle_exit_s": self.idle,
                "package": self.fingerprint.package}


def _receive(conn: socket.socket, maxfds: int = 3) -> tuple[bytes, list[int]]:
    """One request line and the descriptors sent with it (a caller's to the resident, the resident's to a
    spare); ValueError when the other end closes first."""
    data, fds, _, _ = socket.recv_fds(conn, wire.MAX_MESSAGE, maxfds)
    while not data.endswith(b"\n"):
        more = conn.recv(wire.MAX_MESSAGE)
        if not more or len(data) > wire.MAX_MESSAGE:
            _close(list(fds))
            raise ValueError("incomplete request")
        data += more
    return data, list(fds)


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _try_send(conn: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the caller went away: nobody to tell
        conn.sendall(data)


def _fork(body: Any, inherited: list[int]) -> int:
    pid = os.fork()
    if pid:
        return pid
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _close(inherited)
        body()
    except BaseException:
        traceback.print_exc()
    os._exit(1)


def _spare(ctl: socket.socket, run_dir: Path) -> None:
    """Warm up, say so, wait for one command; run it (never returns)."""
    from hms.resident import warmup

    try:
        warmup.warm(run_dir)
    except Exception:
        traceback.print_exc()  # into the resident's log; the spare is no warmer, but it still serves
    gc.collect()
    gc.freeze()
    ctl.sendall(b"ready\n")
    try:
        data, fds = _receive(ctl, 4)
    except ValueError:
        os._exit(0)  # the resident stopped, or left: nothing to run
    if len(fds) != 4:
        _close(fds)
        os._exit(0)
    _run(json.loads(data), fds, ctl)


def _run(req: dict[str, Any], fds: list[int], ctl: socket.socket) -> None:
    """Become the caller's process: its streams, directory, environment, umask and argv; run. Then close the
    caller's streams and tell it the status (``fds[3]`` is its connection), and the resident that it is
    done, before exiting: neither waits for the kernel to take down a few hundred MiB of heap (~20 ms). The
    resident says the status again from waitpid, which is what counts if the child never gets here."""
    code = 1
    caller = fds.pop()
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(req["cwd"])
        os.umask(int(req["umask"]))
        os.environ.clear()
        os.environ.update(req["env"])
        argv = list(req["argv"])
        sys.argv = ["hms", *argv]
        _reopen_streams()
        from hms.cli import _dispatch, build_parser

        code = _dispatch(build_parser(["hms.cli.policy"]), argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int | None):
            print(e.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        for fd in (0, 1, 2):  # the caller's pipes see their end now
            os.close(fd)
        for sock, said in ((caller, wire.line("exit", code)), (ctl.fileno(), b"done\n")):
            with contextlib.suppress(OSError):
                os.write(sock, said)
        os._exit(code)


def _reopen_streams() -> None:
    """Standard streams as Python opens them for a fresh process on these descriptors (a terminal's are
    line-buffered, so a progress bar shows; a pipe's are not)."""
    encoding = os.environ.get("PYTHONIOENCODING", "utf-8").split(":")[0] or "utf-8"
    for fd, name, errors in ((0, "stdin", "strict"), (1, "stdout", "strict"), (2, "stderr", "backslashreplace")):
        tty = os.isatty(fd)
        raw = io.FileIO(fd, "r" if fd == 0 else "w", closefd=False)
        buffered = io.BufferedReader(raw) if fd == 0 else io.BufferedWriter(raw)
        stream = io.TextIOWrapper(buffered, encoding=encoding, errors=errors, line_buffering=tty or fd == 2,
                                  write_through=fd == 2)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m hms.resident.server")
    p.add_argument("--home", required=True, type=Path)
    p.add_argument("--idle", type=float, default=DEFAULT_IDLE)
    a = p.parse_args(argv)
    return Resident(a.home, a.idle).serve()


if __name__ == "__main__":
    sys.exit(main())

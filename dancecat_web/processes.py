"""``dancecat serve --processes N``: N forked web processes behind one listening socket.

One Python process serves on one core (the GIL); the web tier uses more by forking. The
parent binds the socket, builds the app once (children share its pages copy-on-write), then
forks children that each run waitress on the inherited socket, so the kernel hands each new
connection to whichever child accepts it first. The parent starts no threads and serves
nothing: it only restarts a child that dies and, on SIGTERM or SIGINT, stops them all. A
child also gets SIGTERM when the parent dies without cleaning up (``PR_SET_PDEATHSIG``).

Kept in the standard library rather than handed to gunicorn: no new dependency, the same
``dancecat serve`` command and settings on one process or many, and the embedded consumer
(``EMBEDDED_WORKER`` without ``REDIS_URL``) can be one supervised process beside the web
ones: it must run once, not once per process.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# A child that lived less than this is restarted only after it, so a child that cannot
# start (a port, a database gone) does not make the parent fork in a tight loop.
QUICK_DEATH_SECONDS = 1.0
STOP_GRACE_SECONDS = 15.0
_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class _Stop(Exception):
    """The parent was told to stop (SIGTERM or SIGINT)."""


def default_count(redis_url: str | None) -> int:
    """Every core with a queue server; one process on embedded defaults."""
    if redis_url is None:
        return 1
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )


def listening_socket(host: str, port: int) -> socket.socket:
    """The socket every child accepts on, bound once here (an IPv6 address works too)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGTERM this child when the parent dies; elsewhere this is skipped."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)


def _fork(role: str, target: Callable[[], None]) -> int:
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        _die_with_parent(parent)
        target()
    except KeyboardInterrupt:
        pass
    except BaseException:
        log.exception("%s process %s failed", role, os.getpid())
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # never run the parent's stack (its finally blocks) in a child


def supervise(children: dict[str, Callable[[], None]]) -> int:
    """Fork one process per entry (``role: what it runs``) and keep them running until
    SIGTERM or SIGINT; then stop them and wait for them. Returns the exit code."""

    def stop(signum: int, frame: object) -> None:
        raise _Stop

    previous = {sig: signal.signal(sig, stop) for sig in _STOP_SIGNALS}
    running: dict[int, tuple[str, float]] = {}

    def start(role: str) -> None:
        # A stop signal between the fork and the bookkeeping would leave a child unknown
        # to the parent: held back until the child is in ``running``.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            running[_fork(role, children[role])] = (role, time.monotonic())
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)

    try:
        for role in children:
            start(role)
        while True:
            pid, status = os.wait()
            role, started = running.pop(pid, ("", 0.0))
            if not role:
                continue
            lived = time.monotonic() - started
            log.warning(
                "%s process %s exited (status %s) after %.1f s; starting another",
                role,
                pid,
                status,
                lived,
            )
            print(f"{role} process {pid} exited; starting another", file=sys.stderr, flush=True)
            if lived < QUICK_DEATH_SECONDS:
                time.sleep(QUICK_DEATH_SECONDS)
            start(role)
    except _Stop:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_all(running)
    return 0


def _stop_all(running: dict[int, tuple[str, float]]) -> None:
    """SIGTERM every child, wait for them; SIGKILL any still there after the grace time."""
    for pid in running:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while running and time.monotonic() < deadline:
        for pid in list(running):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                running.pop(pid)
        time.sleep(0.05)
    for pid in running:
        log.warning("process %s did not stop in %.0f s; killed", pid, STOP_GRACE_SECONDS)
        _signal(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)

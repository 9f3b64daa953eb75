"""``dancecat serve --processes N``: N forked web processes behind one listening socket.

One Python process serves on one core (the GIL); the web tier uses more by forking. The
parent binds the socket, builds the app once (children share its pages copy-on-write), then
forks children that each run waitress. The parent starts no threads and serves nothing: it
accepts each new connection and hands it to the web process holding the fewest
(``handoff``), restarts a child that dies and, on SIGTERM or SIGINT, stops them all. A
child also gets SIGTERM when the parent dies without cleaning up (``PR_SET_PDEATHSIG``).

Kept in the standard library rather than handed to gunicorn: no new dependency, the same
``dancecat serve`` command and settings on one process or many, and the embedded consumer
(``EMBEDDED_WORKER`` without ``REDIS_URL``) can be one supervised process beside the web
ones: it must run once, not once per process.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import attrs

from dancecat_web import handoff

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


def _fork(role: str, target: Callable[[], None], parents: list[Any]) -> int:
    """Fork a child that runs ``target``; it first closes ``parents`` (the parent's own
    sockets and pipes: the listening socket, the other processes' pairs)."""
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        for held in parents:
            if isinstance(held, int):
                os.close(held)
            else:
                held.close()
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


@attrs.frozen
class WebTier:
    """The web processes: ``count`` of them, each running ``serve`` with its seat, fed
    the connections the parent accepts on ``listener`` (``handoff``)."""

    listener: socket.socket
    count: int
    serve: Callable[[handoff.Seat], None]


@attrs.frozen
class _Role:
    """What one supervised process runs: ``target``, or the web tier's app in seat
    ``slot`` (a web process, fed connections by the parent)."""

    target: Callable[[], None] | None = None
    slot: int | None = None


def supervise(children: dict[str, Callable[[], None]], web: WebTier | None = None) -> int:
    """Fork one process per entry (``role: what it runs``) and one per web process, and
    keep them running until SIGTERM or SIGINT; then stop them and wait for them. With a
    web tier, the parent hands each new connection to one of its processes. Returns the
    exit code."""

    def stop(signum: int, frame: object) -> None:
        raise _Stop

    seats = handoff.Seats(web.count) if web else None
    roles = {role: _Role(target=target) for role, target in children.items()}
    if web:
        roles.update({f"web {n + 1}": _Role(slot=n) for n in range(web.count)})
    woken, wake = os.pipe()
    os.set_blocking(woken, False)
    os.set_blocking(wake, False)
    previous = {sig: signal.signal(sig, stop) for sig in _STOP_SIGNALS}
    previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    previous_wakeup = signal.set_wakeup_fd(wake)
    running: dict[int, tuple[str, float]] = {}
    restarts: list[tuple[float, str]] = []
    selector = selectors.DefaultSelector()

    def start(role: str) -> None:
        slot = roles[role].slot
        held: list[Any] = [woken, wake, selector]
        if web:
            held.append(web.listener)
        if slot is not None:
            assert web is not None and seats is not None
            seat = seats.open(slot)
            held += seats.ends()
            target: Callable[[], None] = functools.partial(web.serve, seat)
        else:
            target = roles[role].target
            assert target is not None
        # A stop signal between the fork and the bookkeeping would leave a child unknown
        # to the parent: held back until the child is in ``running``.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            running[_fork(role, target, held)] = (role, time.monotonic())
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
            if slot is not None:
                seat.end.close()

    def reap() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return
            role, started = running.pop(pid, ("", 0.0))
            if not role:
                continue
            slot = roles[role].slot
            if seats is not None and slot is not None:
                seats.close(slot)
            lived = time.monotonic() - started
            log.warning(
                "%s process %s exited (status %s) after %.1f s; starting another",
                role,
                pid,
                status,
                lived,
            )
            print(f"{role} process {pid} exited; starting another", file=sys.stderr, flush=True)
            # A child that cannot start (a port, a database gone) must not make the
            # parent fork in a tight loop.
            delay = QUICK_DEATH_SECONDS if lived < QUICK_DEATH_SECONDS else 0.0
            restarts.append((time.monotonic() + delay, role))

    try:
        selector.register(woken, selectors.EVENT_READ)
        if web:
            selector.register(web.listener, selectors.EVENT_READ)
        for role in roles:
            start(role)
        while True:
            now = time.monotonic()
            for when, role in sorted(restarts):
                if when <= now:
                    restarts.remove((when, role))
                    start(role)
            timeout = min((when for when, _ in restarts), default=now + 60) - now
            for key, _ in selector.select(max(0.0, timeout)):
                if key.fileobj is woken:
                    with contextlib.suppress(BlockingIOError):
                        os.read(woken, 512)
                    reap()
                elif web is not None and seats is not None:
                    _hand_new_connections(web.listener, seats)
    except _Stop:
        pass
    finally:
        signal.set_wakeup_fd(previous_wakeup)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        selector.close()
        _stop_all(running)
        if seats is not None:
            seats.close_all()
        os.close(woken)
        os.close(wake)
    return 0


def _hand_new_connections(listener: socket.socket, seats: handoff.Seats) -> None:
    """Accept what is waiting (a bounded number, so the parent still hears its children)
    and hand each to a web process; one no process could take is closed."""
    for _ in range(64):
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # out of file descriptors, a connection reset: not fatal
            log.warning("accepting a connection failed: %s", exc)
            return
        with conn:
            if not seats.hand(conn):
                log.warning("no web process could take a new connection; closed")


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

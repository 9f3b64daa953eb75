"""One request at a time in each web process, in the order they came (``Turns``).

A web process runs eight request threads (``commands.THREADS``) so that requests that
wait (a connection test on a silent host, a preview on a slow database) leave it
answering. But Python runs one thread at a time, handing the interpreter round in 5 ms
slices and at every database round trip: eight requests that each need 3 ms of CPU then
all finish late together instead of one after another. Measured on the bench (Jobs screen,
20 clients, two processes): one thread a process gave p50 40 / p95 48 ms where eight gave
48 / 87 ms, at more requests a second (less switching).

So each request waits for its turn, first come first served; a turn is the application
call (a streamed body is sent after it). A request that holds its turn past ``patience``
is taken to be waiting on something slow, and the next in line starts beside it: a slow
request delays the others by at most that, never holds the process.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

# Past this a turn is taken to wait on something slow: a Jobs screen alone is ~5 ms of
# wall time, ~10 ms on a busy machine.
PATIENCE_SECONDS = 0.025


class Turns:
    """The line of requests in one process: ``enter`` waits for the turn, ``leave`` passes
    it to the next. A turn older than ``patience`` no longer blocks the line."""

    def __init__(self, patience: float = PATIENCE_SECONDS):
        self.patience = patience
        self._lock = threading.Lock()
        self._line: collections.deque[threading.Event] = collections.deque()
        self._held: dict[int, float] = {}  # ticket -> when its turn began (monotonic)
        self._tickets = 0

    def _blocked_until(self, now: float) -> float | None:
        """When the newest turn still held runs out of patience; None: nothing blocks."""
        newest = max(self._held.values(), default=None)
        if newest is None or now - newest >= self.patience:
            return None
        return newest + self.patience

    def _take(self, now: float) -> int:
        self._tickets += 1
        self._held[self._tickets] = now
        return self._tickets

    def enter(self) -> int:
        """Wait for this request's turn; returns the ticket ``leave`` takes."""
        with self._lock:
            now = time.monotonic()
            if not self._line and self._blocked_until(now) is None:
                return self._take(now)
            mine = threading.Event()
            self._line.append(mine)
        while True:
            with self._lock:
                now = time.monotonic()
                if self._line[0] is mine:
                    until = self._blocked_until(now)
                    if until is None:
                        self._line.popleft()
                        ticket = self._take(now)
                        if self._line:
                            self._line[0].set()  # the next in line: wait for this turn
                        return ticket
                    timeout: float | None = until - now
                else:
                    timeout = None
                mine.clear()
            mine.wait(timeout)

    def leave(self, ticket: int) -> None:
        with self._lock:
            del self._held[ticket]
            if self._line:
                self._line[0].set()


def in_turn(app: Callable[..., Iterable[bytes]], turns: Turns | None = None) -> Callable[..., Any]:
    """The WSGI ``app`` called one request at a time per process (see the module)."""
    line = turns or Turns()

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        ticket = line.enter()
        try:
            return app(environ, start_response)
        finally:
            line.leave(ticket)

    return wsgi

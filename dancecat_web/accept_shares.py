"""Web processes sharing one socket take new connections in turn, by how many each holds.

The kernel hands a new connection to whichever forked process accepts first, and kept-alive
connections stay where they landed. Twenty clients on two processes were seen split 14 / 6
(``ss -tnp`` during the bench): the process with 14 answered each of its clients at less
than half the rate of the other, which set the tier's p95. Node's cluster module hands
connections out round-robin from its parent for the same reason; here no parent sits in
the path: each process publishes its open connections in memory the forked processes
share, and listens for new ones only while it holds no more than the least loaded live
one. A process whose main loop has not run for ``STALE_SECONDS`` (stopped, hung, dead
and not yet replaced: its replacement takes over its slot) is left out of the comparison,
so it can delay new connections by that long at most.
"""

from __future__ import annotations

import ctypes
import math
import time
from multiprocessing.sharedctypes import RawArray
from typing import Any

# waitress's main loop wakes at least once a second (``asyncore_loop_timeout``).
STALE_SECONDS = 3.0


class AcceptShares:
    """Open connections and last sign of life per web process, by role; made before
    forking."""

    def __init__(self, roles: list[str]):
        self._index = {role: n for n, role in enumerate(roles)}
        # Per process: open connections, then the monotonic time its loop last ran
        # (CLOCK_MONOTONIC is one clock for every process on the machine).
        self._slots = RawArray(ctypes.c_double, 2 * len(roles))
        for slot in range(len(roles)):
            self._slots[2 * slot + 1] = -math.inf  # not started yet: left out

    def may_accept(self, role: str, held: int, now: float) -> bool:
        """Publish that ``role`` holds ``held`` connections at ``now``; whether it may
        take another: it holds no more than any other live process."""
        slots = self._slots
        mine = self._index[role]
        slots[2 * mine] = held
        slots[2 * mine + 1] = now
        for other in range(len(self._index)):
            if other == mine:
                continue
            beat = slots[2 * other + 1]
            if now - beat < STALE_SECONDS and slots[2 * other] < held:
                return False
        return True

    def balance(self, server: Any, role: str) -> None:
        """Make waitress's listening ``server`` (one socket) ask before each poll whether
        it may accept; its own reasons not to (the connection limit) still count."""
        listening = server.readable
        channels = server.active_channels

        def readable() -> bool:
            allowed = self.may_accept(role, len(channels), time.monotonic())
            return listening() and allowed

        server.readable = readable

"""The web processes of ``dancecat serve --processes N`` take connections in turn.

All children accept on one inherited socket, and the kernel wakes whichever are waiting:
a child that happens to be awake first takes a whole burst. Measured with ``wrk -c 20``
against two children, one held 17, 19 or all 20 of the kept-alive connections in three
runs of six, and those runs served 128 instead of ~230 requests a second (one process on
one core, the other idle) with twice the latency.

So each child publishes how many connections it holds in memory shared across the fork
(``Loads``), and offers to accept only while it holds no more than the least loaded child.
The count is written at every turn of the child's event loop, before it decides, and a
child accepts at most one connection a turn; so two children can never both decline (the
one that declines saw a smaller count, written by a child that then accepted at most one
more). A dead child's count is set out of the way until its replacement writes its own.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import sys
from typing import Any

_OUT_OF_THE_WAY = sys.maxsize


class Loads:
    """Connections held per web process, one slot each, in shared memory (made before
    the fork, so every child writes into the same pages)."""

    def __init__(self, slots: int) -> None:
        self._held = multiprocessing.RawArray(ctypes.c_ssize_t, slots)

    def publish(self, slot: int, held: int) -> bool:
        """Record ``held`` for ``slot``; whether that child should accept now."""
        self._held[slot] = held
        return held <= min(self._held)

    def forget(self, slot: int) -> None:
        """A child died: its count stops holding the others back."""
        self._held[slot] = _OUT_OF_THE_WAY

    def held(self) -> list[int]:
        return list(self._held)


def take_turns(server: Any, loads: Loads, slot: int) -> None:
    """Make a waitress server accept only while its process is among the least loaded.

    waitress asks its listening dispatcher ``readable()`` before each wait of its loop;
    its own answer (the connection limit, the idle-connection sweep) still holds. What a
    process holds is its loop's map: its connections plus the two fixed entries (the
    listening socket and the wake-up pipe) every child has alike.
    """
    own = server.readable

    def readable() -> bool:
        accepting = own()
        return loads.publish(slot, len(server._map)) and accepting

    server.readable = readable

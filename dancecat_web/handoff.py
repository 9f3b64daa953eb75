"""New connections handed by the ``serve`` parent to the web process holding the fewest.

With every process accepting on the one socket, the kernel gives a new connection to
whichever wakes first: 20 clients connecting at once were split 14/6, 6/14, and once
20/0 (Jobs screen p95 124 ms against 71 ms balanced). A keep-alive connection stays where
it landed, and with each process serving its requests in turn (``turns``) a process's
latency grows with the connections it holds. So the parent accepts, and passes each
connection (``SCM_RIGHTS`` over a Unix socket pair per process) to the process with the
fewest open ones, counted from what it was handed and what it reports in shared memory
(received, open); ties go round. A process whose socket is full or gone is skipped.

The child serves with waitress as before: ``HandedServer`` is waitress's TCP server whose
``accept`` receives from the pair instead of the listening socket.
"""

from __future__ import annotations

import logging
import mmap
import socket
import struct
from typing import Any

import attrs
from waitress.adjustments import Adjustments
from waitress.server import TcpWSGIServer

log = logging.getLogger(__name__)

_COUNTS = struct.Struct("qq")  # received, open: written by the child only


@attrs.define
class Seat:
    """One web process's place: its end of the pair, its counts' slot."""

    slot: int
    end: socket.socket
    counts: mmap.mmap


class Seats:
    """The parent's side: a pair and a slot of counts per web process."""

    def __init__(self, count: int):
        self.counts = mmap.mmap(-1, _COUNTS.size * count)  # shared with the forked children
        self._ends: dict[int, socket.socket] = {}
        self._sent = [0] * count
        self._next = 0

    def open(self, slot: int) -> Seat:
        """A new pair for ``slot`` (a process starting); returns the child's seat."""
        self.close(slot)
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        parent.setblocking(False)
        self._ends[slot] = parent
        self._sent[slot] = 0
        _COUNTS.pack_into(self.counts, slot * _COUNTS.size, 0, 0)
        return Seat(slot, child, self.counts)

    def close(self, slot: int) -> None:
        end = self._ends.pop(slot, None)
        if end is not None:
            end.close()

    def close_all(self) -> None:
        for slot in list(self._ends):
            self.close(slot)

    def ends(self) -> list[socket.socket]:
        return list(self._ends.values())

    def _load(self, slot: int) -> int:
        received, open_now = _COUNTS.unpack_from(self.counts, slot * _COUNTS.size)
        return open_now + self._sent[slot] - received

    def hand(self, conn: socket.socket) -> bool:
        """Pass ``conn`` to the least loaded process; False when none could take it."""
        slots = sorted(self._ends)
        if not slots:
            return False
        start = self._next % len(slots)
        order = sorted(slots[start:] + slots[:start], key=self._load)
        self._next += 1
        for slot in order:
            try:
                socket.send_fds(self._ends[slot], [b"c"], [conn.fileno()])
            except OSError:  # full (busy) or gone (dying): the next one
                continue
            self._sent[slot] += 1
            return True
        return False


class HandedServer(TcpWSGIServer):
    """waitress's server for a child of ``serve``: connections come over its seat's pair
    (``accept``), and it reports how many it received and holds (``readable``, called
    on every turn of its loop)."""

    def __init__(self, app: Any, seat: Seat, family: int, name: tuple[str, int], **options: Any):
        self._seat = seat
        self._name = name
        self._received = 0
        adj = Adjustments(**options)
        super().__init__(
            app,
            map={},
            _sock=seat.end,
            adj=adj,
            bind_socket=False,
            sockinfo=(family, socket.SOCK_STREAM, 0, name),
        )

    def accept_connections(self) -> None:
        self.accepting = True  # the pair is connected already: nothing to listen on

    def getsockname(self) -> tuple[str, str]:
        return self._name[0], str(self._name[1])

    def readable(self) -> bool:
        ready = super().readable()
        _COUNTS.pack_into(
            self._seat.counts,
            self._seat.slot * _COUNTS.size,
            self._received,
            len(self.active_channels),
        )
        return ready

    def accept(self) -> tuple[socket.socket, Any] | None:
        try:
            _, fds, _, _ = socket.recv_fds(self.socket, 16, 4)
        except (BlockingIOError, InterruptedError):
            return None
        if not fds:  # the parent closed its end: it is going away
            self.accepting = False
            return None
        for extra in fds[1:]:  # one connection a message; anything else is not ours
            socket.close(extra)
        conn = socket.socket(fileno=fds[0])
        self._received += 1
        try:
            return conn, conn.getpeername()
        except OSError:  # the client left before it got here
            conn.close()
            return None

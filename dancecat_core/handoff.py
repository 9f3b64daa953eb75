"""Blocks of a byte stream, and handing them to a second thread.

A run's rows arrive one ``write`` at a time (psycopg2's COPY calls it once per row: a
million calls for a million rows). ``block_buffer`` takes those at C speed and hands on
only whole blocks. ``Handoff`` puts a thread behind such a buffer: the thread that reads
the database goes on reading while another masks, hashes and stores the last block. Both
halves spend most of their time outside the GIL (the driver waits on its socket, the
masker's searches, SHA-256 and the file's writes release it), so on two cores the reading
and the writing overlap instead of taking turns.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

BLOCK = 1 << 20
# Blocks waiting for the thread: the memory a run may hold beyond its own block.
DEPTH = 2


class Writable(Protocol):
    def write(self, data: bytes) -> Any: ...


class _Raw(io.RawIOBase):
    """The raw end of a block buffer: each full block goes to ``accept``."""

    def __init__(self, accept: Callable[[bytes], int]):
        self._accept = accept

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self._accept(data)


class _DroppingBuffer(io.BufferedWriter):
    """A buffer that, if abandoned (a failed run), is dropped rather than flushed on GC."""

    def __del__(self) -> None:
        pass


def block_buffer(accept: Callable[[bytes], int], size: int = BLOCK) -> io.BufferedWriter:
    """A C-level buffer whose ``write`` takes any pieces and calls ``accept`` with blocks
    of about ``size`` bytes (and with what is left on ``flush``)."""
    return _DroppingBuffer(_Raw(accept), buffer_size=size)


class Handoff:
    """Writes to ``sink`` in blocks, on a thread of its own once the stream outgrows one
    block (a small result is written by the caller's thread, and no thread is started).

    ``close`` writes what is left, waits for the thread and raises what ``sink`` raised;
    an error of ``sink``'s is also raised by the next ``write`` that hands over a block,
    so a full disk stops the query. ``discard`` (a failed run) stops the thread and drops
    what is buffered. Memory: the block being filled and at most ``DEPTH`` more.
    """

    def __init__(self, sink: Writable, block: int = BLOCK):
        self._sink = sink
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=DEPTH)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._closing = False
        self._buffer = block_buffer(self._hand_over, block)
        self.write = self._buffer.write

    def _hand_over(self, data: Any) -> int:
        if self._error is not None:
            raise self._error
        if self._thread is None:
            if self._closing:  # the whole stream fitted in one block: no thread for it
                self._sink.write(bytes(data))
                return len(data)
            self._thread = threading.Thread(target=self._drain, name="dancecat-writer")
            self._thread.daemon = True
            self._thread.start()
        self._queue.put(bytes(data))
        return len(data)

    def _drain(self) -> None:
        while (block := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._sink.write(block)
                except BaseException as exc:  # raised in the reading thread
                    self._error = exc

    def _stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        """Write everything to ``sink`` and wait until it has been."""
        self._closing = True
        try:
            self._buffer.flush()
        finally:
            self._stop()
        if self._error is not None:
            raise self._error

    def discard(self) -> None:
        """Stop without writing what is buffered (the run failed; its blob is aborted)."""
        self._stop()

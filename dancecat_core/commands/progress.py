"""Progress of long console work (``job run``, ``export``) on a terminal.

Only when standard error is a terminal: a line redrawn in place (rows and bytes so far,
elapsed time; a bar when the total is known), erased when the work ends. Piped or
redirected, nothing is drawn and nothing is counted, so scripts and benchmarks pay
nothing for it.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import TextIO

from dancecat_core.resultstore import BlobWriter, ResultStore

REDRAW_SECONDS = 0.2
BAR_WIDTH = 24


def wanted(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class CsvCounter:
    """Bytes and rows of a CSV stream seen chunk by chunk.

    A row ends at a newline outside quotes; every ``"`` toggles "inside quotes" (an
    escaped ``""`` toggles twice), so a value holding a newline is not counted as a row.
    The first row is the header.
    """

    def __init__(self) -> None:
        self.bytes = 0
        self._lines = 0
        self._quoted = False

    @property
    def rows(self) -> int:
        return max(self._lines - 1, 0)

    def feed(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        if b'"' not in chunk:
            if not self._quoted:
                self._lines += chunk.count(b"\n")
            return
        for index, part in enumerate(chunk.split(b'"')):
            if index:
                self._quoted = not self._quoted
            if not self._quoted:
                self._lines += part.count(b"\n")


class _CountingWriter(BlobWriter):
    def __init__(self, inner: BlobWriter, counter: CsvCounter):
        self._inner = inner
        self._counter = counter

    def write(self, data: bytes) -> int:
        self._counter.feed(data)
        return self._inner.write(data)

    def commit(self) -> int:
        return self._inner.commit()

    def abort(self) -> None:
        self._inner.abort()


class CountingStore(ResultStore):
    """A result store that counts what a run writes into it, for the progress line."""

    def __init__(self, inner: ResultStore, counter: CsvCounter):
        super().__init__(inner.settings, inner.session_factory)
        self._inner = inner
        self.counter = counter
        self.name = inner.name

    def create(self, key: str) -> BlobWriter:
        return _CountingWriter(self._inner.create(key), self.counter)

    def open(self, key: str):
        return self._inner.open(key)

    def exists(self, key: str) -> bool:
        return self._inner.exists(key)

    def size(self, key: str) -> int | None:
        return self._inner.size(key)

    def delete(self, key: str) -> None:
        self._inner.delete(key)


def human_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover (the loop returns at GB)


class ProgressLine:
    """``with ProgressLine("running", counter):`` redraws a status line on stderr.

    ``counter`` has ``bytes`` and ``rows`` (None: not known); ``total_bytes`` draws a bar.
    On anything but a terminal (or with ``enabled`` false) it does nothing.
    """

    def __init__(
        self,
        label: str,
        counter: CsvCounter,
        *,
        total_bytes: int | None = None,
        show_rows: bool = True,
        stream: TextIO | None = None,
        enabled: bool = True,
    ):
        self.label = label
        self.counter = counter
        self.total_bytes = total_bytes
        self.show_rows = show_rows
        self.stream = stream or sys.stderr
        self.active = enabled and wanted(self.stream)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()

    def __enter__(self) -> ProgressLine:
        if self.active:
            self._started = time.monotonic()
            self._draw()
            self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._draw()
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def _loop(self) -> None:
        while not self._stop.wait(REDRAW_SECONDS):
            self._draw()

    def text(self) -> str:
        elapsed = time.monotonic() - self._started
        parts = [self.label]
        if self.show_rows:
            parts.append(f"{self.counter.rows:,} rows")
        done = self.counter.bytes
        if self.total_bytes:
            share = min(done / self.total_bytes, 1.0)
            filled = int(share * BAR_WIDTH)
            parts.append(
                f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {share:4.0%} "
                f"{human_bytes(done)} of {human_bytes(self.total_bytes)}"
            )
        else:
            parts.append(human_bytes(done))
        parts.append(f"{elapsed:.1f} s")
        return "  ".join(parts)

    def _draw(self) -> None:
        self.stream.write("\r\x1b[K" + self.text())
        self.stream.flush()

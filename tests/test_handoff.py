"""``Handoff``: blocks reach the sink whole and in order, on a thread only for big streams,
errors reach the writer, and nothing keeps running after ``close`` or ``discard``."""

import threading

import pytest

from dancecat_core.errors import StoreError
from dancecat_core.handoff import Handoff


class Sink:
    def __init__(self, fail_at: int | None = None):
        self.blocks: list[bytes] = []
        self.threads: set[str] = set()
        self.fail_at = fail_at

    def write(self, data: bytes) -> int:
        self.threads.add(threading.current_thread().name)
        if self.fail_at is not None and len(self.blocks) == self.fail_at:
            raise StoreError("disk full")
        self.blocks.append(data)
        return len(data)


def writers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "dancecat-writer"]


def test_small_stream_is_written_by_the_caller_with_no_thread():
    sink = Sink()
    handoff = Handoff(sink, block=1024)
    for i in range(10):
        handoff.write(b"row %d\n" % i)
    assert sink.blocks == []  # held until close
    handoff.close()
    assert b"".join(sink.blocks) == b"".join(b"row %d\n" % i for i in range(10))
    assert sink.threads == {threading.current_thread().name}


def test_big_stream_arrives_whole_and_in_order_from_the_writer_thread():
    sink = Sink()
    handoff = Handoff(sink, block=4096)
    expected = b"".join(b"%08d,some text,\"quoted, field\"\n" % i for i in range(50_000))
    for i in range(50_000):
        handoff.write(b"%08d,some text,\"quoted, field\"\n" % i)
    handoff.close()
    assert b"".join(sink.blocks) == expected
    assert "dancecat-writer" in sink.threads
    assert writers() == []


def test_a_sink_error_stops_the_writer_and_is_raised_by_write_or_close():
    sink = Sink(fail_at=3)
    handoff = Handoff(sink, block=1024)
    with pytest.raises(StoreError, match="disk full"):
        for _ in range(100_000):
            handoff.write(b"x" * 100)
        handoff.close()
    handoff.discard()
    assert len(sink.blocks) == 3
    assert writers() == []


def test_an_error_in_the_last_block_is_raised_by_close():
    sink = Sink(fail_at=0)
    handoff = Handoff(sink, block=1024)
    handoff.write(b"x" * 100)
    with pytest.raises(StoreError):
        handoff.close()


def test_discard_stops_the_thread_and_drops_what_is_buffered():
    sink = Sink()
    handoff = Handoff(sink, block=1024)
    handoff.write(b"a" * 5000)  # hands blocks to a thread
    handoff.write(b"b" * 10)  # still buffered
    handoff.discard()
    assert writers() == []
    assert b"b" not in b"".join(sink.blocks)

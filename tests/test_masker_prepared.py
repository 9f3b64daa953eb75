"""A masker prepares its patterns once per tuple (``scrubbing._prepare``): a runtime's
patterns are a tuple fixed for its life. Another tuple, even one holding other patterns
under the same names, must mask by its own patterns, never by what was kept."""

from __future__ import annotations

import io
import re

from dancecat_core.scrubbing import MASK, ValueMasker, ValuePattern


def _masked(patterns, text: bytes) -> bytes:
    sink = io.BytesIO()
    masker = ValueMasker(sink, patterns)
    masker.write(text)
    masker.flush_all()
    return sink.getvalue()


def _pattern(word: bytes) -> ValuePattern:
    return ValuePattern("token", re.compile(word + rb"[0-9]{4}"), triggers=(word,))


def test_each_tuple_masks_by_its_own_patterns() -> None:
    text = b"abc1234,xyz5678\r\n"
    first = (_pattern(b"abc"),)
    assert _masked(first, text) == MASK.encode() + b",xyz5678\r\n"
    assert _masked(first, text) == MASK.encode() + b",xyz5678\r\n"  # kept
    other = (_pattern(b"xyz"),)
    assert _masked(other, text) == b"abc1234," + MASK.encode() + b"\r\n"
    both = [_pattern(b"abc"), _pattern(b"xyz")]  # a list: prepared each time
    assert _masked(both, text) == MASK.encode() + b"," + MASK.encode() + b"\r\n"
    both.pop()
    assert _masked(both, text) == MASK.encode() + b",xyz5678\r\n"


def test_a_kept_tuple_is_prepared_once() -> None:
    patterns = (_pattern(b"abc"), _pattern(b"xyz"))
    one, two = ValueMasker(io.BytesIO(), patterns), ValueMasker(io.BytesIO(), patterns)
    assert one._prepared is two._prepared
    assert ValueMasker(io.BytesIO(), list(patterns))._prepared is not one._prepared

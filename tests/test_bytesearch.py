"""``bytesearch.contains`` answers exactly as ``in`` does, on the blocks the masker hands it."""

import random

import pytest

from dancecat_core import bytesearch
from dancecat_core.bytesearch import contains


def test_memmem_is_in_use_here():
    # On Linux the C library has memmem: the fast path is what the tests below exercise.
    assert bytesearch.memmem() is not None


@pytest.mark.parametrize("size", [0, 1, 100, 16 * 1024 - 1, 16 * 1024, 1 << 20])
def test_agrees_with_in_at_every_edge(size):
    rng = random.Random(size)
    block = bytes(rng.randrange(256) for _ in range(min(size, 4096))) * (size // 4096 + 1)
    block = block[:size]
    needles = [b"sk-", b": ", b'" :', b"\x00", b"\x00\x00a", b"zzzzzzzzzzzzzzzzzz"]
    if size:
        needles += [block[:3], block[-3:], block[size // 2 : size // 2 + 5], block[-1:]]
    for needle in needles:
        assert contains(block, needle) == (needle in block), (size, needle)


def test_finds_a_needle_only_at_the_very_end_or_start_and_after_nul_bytes():
    block = b"\x00" * (1 << 20)
    assert not contains(block, b"sk-")
    assert contains(block + b"sk-", b"sk-")
    assert contains(b"sk-" + block, b"sk-")
    assert contains(block[:500_000] + b": " + block, b": ")
    assert not contains(block + b"sk", b"sk-")  # a needle cut by the end is not found


def test_empty_needle_is_found_as_in_says():
    assert contains(b"x" * 20_000, b"") is True

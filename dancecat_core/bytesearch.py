"""Whether a large block of bytes holds a short byte string: fast, and without the GIL.

The value masker asks of every block of a result (about 1 MiB) whether it holds each of
its patterns' triggers, and on ordinary data four of them (``: ``, ``":``, ``" :``,
``sk-``) have every byte present, so each is a search of the whole block. CPython's
``needle in block`` does those at ~1 GB/s and holds the GIL; the C library's ``memmem``,
called through ctypes, is about twice as fast here (0.46 -> 0.27 s of CPU for the four
searches over a 134 MB result) and releases the GIL while it searches. Where the C library
has no ``memmem`` (Windows), or for small texts (a call's overhead), ``in``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

# Below this a ctypes call costs more than the search it saves.
_LARGE = 16 * 1024


@functools.cache
def memmem() -> Callable[..., int | None] | None:
    """The C library's ``memmem``, or None. Looked up at the first large search: ctypes
    costs ~4 ms to import, and most commands never mask a large text."""
    import ctypes

    try:
        found = ctypes.CDLL(None).memmem  # the C library this process already uses
    except (OSError, AttributeError, TypeError):
        return None
    found.restype = ctypes.c_void_p
    found.argtypes = (ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t)
    return found


def contains(block: bytes, needle: bytes) -> bool:
    """``needle in block``, for ``bytes`` (ctypes reads a ``bytes`` object's own buffer:
    nothing is copied, NUL bytes included)."""
    if len(block) < _LARGE or not needle or (search := memmem()) is None:
        return needle in block
    return search(block, len(block), needle, len(needle)) is not None

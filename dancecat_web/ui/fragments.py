"""Fragments of a page drawn once and kept under everything they were drawn from.

The Jobs screen draws 25 jobs and 25 runs a page, about a thousand template expressions,
and most of it is the same from one request to the next: a finished run does not change,
nor does a job nobody edits. A fragment drawn from the screen's row objects
(``jobs_screen.RunShown``, ``JobShown``, ``LatestShown``) is kept in a per-process LRU under
a key made of *every* value those objects hold (a named tuple's fields, declared plain;
an object's ``__slots__``, followed into the objects they hold) and the per-process or
per-request values a template reads besides (the display zone, the script name; whether
the user may change a job is one of the values): a change in any of them is a different
key, so a kept fragment can never be out of date, only unused. Fragments of ORM objects
(the poller's single rows) are drawn every time. Fragments nest: each row is one, and the
screen's whole content is one (measured with ``wrk``: 6.4 → 5.5 ms of CPU a request in
the web process).

The CSRF token, which differs per session, is not part of the key: a fragment is drawn
with a marker where the token goes and the marker is replaced with this request's token
by the outermost fragment.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import operator
import threading
import types
import typing
from collections.abc import Callable
from typing import Any

from markupsafe import Markup
from pyramid.csrf import get_csrf_token
from pyramid.request import Request
from pyramid_jinja2 import IJinja2Environment
from sqlalchemy import Row

# Characters kept per process: a row is ~1 KB, a whole Jobs screen ~60 KB; 8 MB is a few
# thousand rows or a hundred screens.
KEPT_CHARACTERS = 8_000_000
_TOKEN_MARK = "dancecat-csrf-token-mark"
_PLAIN = (str, int, float, type(None), dt.date, dt.time)  # bool is an int, datetime a date
_PLAIN_TYPES = frozenset((str, int, float, bool, type(None), dt.datetime, dt.date, dt.time))


class _Unkeyable(Exception):
    """A value the key cannot hold for sure (an ORM object, say): draw the row afresh."""


@functools.cache
def _slots(kind: type) -> tuple[str, ...]:
    """Every slot of ``kind``, its bases' included; none for a type whose instances also
    keep a ``__dict__`` (whose attributes a key could not know)."""
    if any("__dict__" in vars(base) for base in kind.__mro__ if base is not object):
        return ()
    return tuple(slot for base in kind.__mro__ for slot in vars(base).get("__slots__", ()))


@functools.cache
def _whole(kind: type) -> bool:
    """Whether ``kind`` is a named tuple whose every field is declared a plain value, a
    tuple of such or another such named tuple (``X | None`` too). Its instances are keyed
    as they are: the dict of kept fragments hashes and compares them in C, where walking
    the same values in Python cost ~0.5 ms a Jobs screen. (A value of another type put in
    a field anyway would compare by identity, if not by value: a miss, never a stale
    fragment.)"""
    if not (issubclass(kind, tuple) and hasattr(kind, "_fields")):
        return False
    try:
        declared = typing.get_type_hints(kind)
    except Exception:
        return False
    return len(declared) == len(kind._fields) and all(
        _declared_plain(declared[name]) for name in kind._fields
    )


def _declared_plain(hint: Any) -> bool:
    if hint in _PLAIN_TYPES:
        return True
    arguments = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return all(_declared_plain(argument) for argument in arguments)
    if origin is tuple:
        return len(arguments) == 2 and arguments[1] is Ellipsis and _declared_plain(arguments[0])
    return isinstance(hint, type) and _whole(hint)


@functools.cache
def _reader(kind: type) -> Callable[[Any], tuple[Any, ...]] | None:
    """Every slot of a ``kind`` object in one call (``attrgetter``), as a tuple."""
    slots = _slots(kind)
    if not slots:
        return None
    get = operator.attrgetter(*slots)
    return (lambda value: (get(value),)) if len(slots) == 1 else get


def _shape(value: Any) -> Any:
    """``value`` as a hashable whole: plain values (and datetimes) and named tuples of
    declared plain fields (``_whole``) as they are, other sequences and rows item by item,
    dicts item by item in key order, slotted objects by their type and every slot."""
    kind = type(value)
    if kind in _PLAIN_TYPES or isinstance(value, _PLAIN) or _whole(kind):
        return value
    if isinstance(value, list | tuple | Row):  # notifications, rows of columns
        return tuple([item if type(item) in _PLAIN_TYPES else _shape(item) for item in value])
    if isinstance(value, dict):  # a page's query values
        return ("dict", *sorted((str(name), _shape(item)) for name, item in value.items()))
    read = _reader(kind)
    if read is None:
        raise _Unkeyable(kind.__name__)
    return (
        kind.__name__,
        *[item if type(item) in _PLAIN_TYPES else _shape(item) for item in read(value)],
    )


class _Key:
    """A fragment's key with its hash worked out once: the store's look-up, its move to
    the end and a put would each hash the whole screen's values again."""

    __slots__ = ("hash", "values")

    def __init__(self, values: tuple[Any, ...]):
        self.values = values
        self.hash = hash(values)

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and self.hash == other.hash and self.values == other.values


class Fragments:
    """A bounded LRU of drawn fragments (``Markup`` with the token marker), bounded by the
    characters it holds: a screen and a row weigh what they are."""

    def __init__(self, size: int = KEPT_CHARACTERS) -> None:
        self.size = size
        self._kept: collections.OrderedDict[Any, str] = collections.OrderedDict()
        self._characters = 0
        self._lock = threading.Lock()
        self.drawn = 0  # fragments drawn (misses), for tests and profiles

    def get(self, key: Any) -> str | None:
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
            return found

    def put(self, key: Any, html: str) -> None:
        if len(html) > self.size:
            return
        with self._lock:
            old = self._kept.pop(key, None)
            if old is not None:
                self._characters -= len(old)
            self._kept[key] = html
            self._characters += len(html)
            while self._characters > self.size:
                _, dropped = self._kept.popitem(last=False)
                self._characters -= len(dropped)


def kept(request: Request, helpers: Any, template: str, **values: Any) -> Markup:
    """``template`` drawn with ``values`` (and ``request``, ``h``, ``get_csrf_token``), kept
    when every value can be keyed.

    Fragments nest: the Jobs screen's content is one fragment whose rows are fragments of
    their own, so a screen where nothing changed is one look-up, and a screen where one run
    changed draws the screen again from 49 kept rows and one new one. While an outer
    fragment is drawn, the inner ones keep the token marker for the outer one to fill in.
    """
    fragments: Fragments = request.registry["dancecat.fragments"]
    try:
        key = _Key(
            (
                template,
                request.link_prefix,
                helpers.zone_name,
                tuple((name, _shape(value)) for name, value in sorted(values.items())),
            )
        )
    except (_Unkeyable, TypeError):  # TypeError: a field holding what cannot be hashed
        key = None
    html = fragments.get(key) if key is not None else None
    outermost = not getattr(request, "_dancecat_drawing", False)
    if html is None:
        environment = request.registry.queryUtility(IJinja2Environment, name=".jinja2")
        request._dancecat_drawing = True
        try:
            html = environment.get_template(template).render(
                request=request, h=helpers, get_csrf_token=lambda: _TOKEN_MARK, **values
            )
        finally:
            request._dancecat_drawing = not outermost
        fragments.drawn += 1
        if key is not None:
            fragments.put(key, html)
    if outermost and _TOKEN_MARK in html:
        html = html.replace(_TOKEN_MARK, get_csrf_token(request))
    return Markup(html)

"""Table rows drawn once and kept under everything they were drawn from.

The Jobs screen draws 25 jobs and 25 runs a page, about a thousand template expressions,
and most of its rows are the same from one request to the next: a finished run does not
change, nor does a job nobody edits. A row drawn from the screen's row objects
(``jobs_screen.RunShown``, ``JobShown``, ``LatestShown``) is kept in a per-process LRU under
a key made of *every* value those objects hold (their ``__slots__``, followed into the
objects they hold) and the per-process or per-request values a row template reads besides
(the display zone, the script name, whether the user may change the job): a change in any
of them is a different key, so a kept row can never be out of date, only unused. Rows of
ORM objects (the poller's single rows) are drawn every time.

The CSRF token, which differs per session, is not part of the key: a row is drawn with a
marker where the token goes and the marker is replaced with this request's token.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import threading
from typing import Any

from markupsafe import Markup
from pyramid.csrf import get_csrf_token
from pyramid.request import Request
from pyramid_jinja2 import IJinja2Environment
from sqlalchemy import Row

# Rows kept per process: a few pages of a few screens' worth; a row is ~1 KB.
KEPT_ROWS = 2_000
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


def _shape(value: Any) -> Any:
    """``value`` as a hashable whole: plain values (and datetimes) as they are, sequences
    and rows item by item, slotted objects by their type and every slot."""
    kind = type(value)
    if kind in _PLAIN_TYPES or isinstance(value, _PLAIN):
        return value
    if isinstance(value, list | tuple | Row):  # notifications, rows of columns
        return tuple([_shape(item) for item in value])
    slots = _slots(kind)
    if not slots:
        raise _Unkeyable(kind.__name__)
    return (kind.__name__, *[_shape(getattr(value, slot)) for slot in slots])


class Fragments:
    """A bounded LRU of drawn rows (``Markup`` with the token marker)."""

    def __init__(self, size: int = KEPT_ROWS) -> None:
        self.size = size
        self._rows: collections.OrderedDict[Any, str] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.drawn = 0  # rows drawn (misses), for tests and profiles

    def get(self, key: Any) -> str | None:
        with self._lock:
            found = self._rows.get(key)
            if found is not None:
                self._rows.move_to_end(key)
            return found

    def put(self, key: Any, html: str) -> None:
        with self._lock:
            self._rows[key] = html
            self._rows.move_to_end(key)
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)


def row(request: Request, helpers: Any, template: str, **values: Any) -> Markup:
    """``template`` drawn with ``values`` (and ``request``, ``h``, ``get_csrf_token``), kept
    when every value can be keyed."""
    fragments: Fragments = request.registry["dancecat.fragments"]
    try:
        key = (
            template,
            request.link_prefix,
            helpers.zone_name,
            tuple((name, _shape(value)) for name, value in sorted(values.items())),
        )
    except _Unkeyable:
        key = None
    html = fragments.get(key) if key is not None else None
    if html is None:
        environment = request.registry.queryUtility(IJinja2Environment, name=".jinja2")
        html = environment.get_template(template).render(
            request=request, h=helpers, get_csrf_token=lambda: _TOKEN_MARK, **values
        )
        fragments.drawn += 1
        if key is not None:
            fragments.put(key, html)
    if _TOKEN_MARK in html:
        html = html.replace(_TOKEN_MARK, get_csrf_token(request))
    return Markup(html)

"""Every list the API answers is paged the same way: this module is that convention.

A list is newest first (by id, an order nothing but a new row changes). ``limit`` asks for
up to ``MAX_LIMIT`` items (``DEFAULT_LIMIT`` when left out); the answer holds the items,
and, only when more follow, ``next``: the URL of the next page (the same filters, the same
``limit``) and ``next_cursor``, the ``cursor`` query parameter that URL carries, for
clients that build their own URLs. The cursor is opaque: clients hand it back, never read
or make one. The OpenAPI document states these parameters and fields from here.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pyramid.request import Request

from dancecat_core.errors import ValidationError
from dancecat_core.services.keyset import Keyset
from dancecat_web.api import MAX_ID
from dancecat_web.api.bodies import query_int

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# The paging parameters this API took before: refused, so a script still sending them
# learns it at once instead of reading the first page forever.
REPLACED = ("offset", "before")
# What a cursor encodes, versioned so its format can change without clients noticing.
_PREFIX = "v1:"

Item = TypeVar("Item")


def _cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{last_id}".encode()).decode().rstrip("=")


def _before(cursor: str) -> int:
    """The id a cursor says the next page starts below, or a 422 naming ``cursor``."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    number = text.removeprefix(_PREFIX)
    if not text.startswith(_PREFIX) or not number.isdigit() or not 1 <= int(number) <= MAX_ID:
        raise ValidationError("cursor is not one this API gave out", "cursor")
    return int(number)


def requested(request: Request) -> Keyset:
    """The page the request asks for, one row longer than it will show: that row, when it
    exists, says there is a next page."""
    for name in REPLACED:
        if name in request.GET:
            raise ValidationError(
                f"{name} is no longer taken: follow next (or pass next_cursor as cursor)", name
            )
    limit = query_int(request, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    cursor = request.GET.get("cursor")
    before = _before(cursor) if cursor is not None else None
    return Keyset(limit=(limit or DEFAULT_LIMIT) + 1, before=before)


def answer(
    request: Request,
    name: str,
    page: Keyset,
    rows: Sequence[Item],
    shown: Callable[[Sequence[Item]], list[Any]],
    *,
    row_id: Callable[[Item], int] = lambda row: row.id,  # type: ignore[attr-defined]
) -> dict[str, Any]:
    """The answer ``{name: [...], "next": url|None, "next_cursor": str|None}`` for ``rows``
    read with ``page`` (``shown`` makes the JSON items); the next page is also a
    ``Link: <url>; rel="next"`` header."""
    kept = rows[: page.limit - 1]
    more = len(rows) >= page.limit
    cursor = _cursor(row_id(kept[-1])) if more else None
    link = None
    if cursor is not None:
        query = {key: value for key, value in request.GET.items() if key != "cursor"}
        link = request.current_route_url(_query={**query, "cursor": cursor})
        request.response.headers["Link"] = f'<{link}>; rel="next"'
    return {name: shown(kept), "next": link, "next_cursor": cursor}

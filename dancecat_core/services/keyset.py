"""One page of a list, newest first, by id: how every API list is read.

Paging by "ids below the last one shown" (keyset paging) instead of an offset means rows
added while a client pages (new runs, new jobs) land before its first page and never shift
the pages it has not read yet, and a row is never shown twice or skipped. Ids only grow,
and nothing else about a row (an edit, a run) moves it in this order.
"""

from __future__ import annotations

from typing import Any

import attrs
from sqlalchemy import Select


@attrs.frozen
class Keyset:
    """At most ``limit`` rows with ids below ``before`` (all when None), newest first."""

    limit: int = attrs.field(validator=attrs.validators.ge(1))
    before: int | None = None

    def apply(self, query: Select, id_column: Any) -> Select:
        if self.before is not None:
            query = query.where(id_column < self.before)
        return query.order_by(id_column.desc()).limit(self.limit)

"""Names unique per owner: one owner's jobs (and connections) never share a name.

Two names are the same when they differ only in case, Unicode form (NFKC: "Café" written
with a combining accent, full-width letters) or runs of spaces. The rule is checked here,
in the service every channel goes through, not by a database constraint: databases made
before it may hold duplicates, and those keep working (a job keeps its name through an
edit; a look-up by a duplicated name is refused with the ids to choose from).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from dancecat_core.errors import Conflict, ValidationError
from dancecat_core.models import Connection, Job


def same_name_key(name: str) -> str:
    """What two names are compared by."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def require_unique(
    session: Session,
    model: type[Job] | type[Connection],
    owner_id: int | None,
    name: str,
    *,
    current: Job | Connection | None = None,
) -> None:
    """Refuse ``name`` if another of the owner's live objects has the same name.

    ``current`` is the object being changed: keeping its own name is always allowed.
    """
    key = same_name_key(name)
    if current is not None and same_name_key(current.name) == key:
        return
    owner = model.owner_id.is_(None) if owner_id is None else model.owner_id == owner_id
    rows = session.execute(
        select(model.id, model.name).where(owner, model.deleted_at.is_(None)).order_by(model.id)
    )
    what = model.__name__.lower()
    for other_id, other_name in rows:
        if same_name_key(other_name) == key and (current is None or other_id != current.id):
            raise ValidationError(
                f"name: a {what} named {other_name!r} already exists (id {other_id}); "
                "choose another name",
                "name",
            )


def only_one(found: Sequence[Job] | Sequence[Connection], name: str, what: str):
    """The one object a name look-up found; two or more (an old database) is refused."""
    if len(found) > 1:
        ids = ", ".join(str(obj.id) for obj in found)
        raise Conflict(f"{len(found)} {what}s are named {name!r} (ids {ids})")
    return found[0] if found else None

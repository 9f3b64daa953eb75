"""Who may see and change what.

The sharing model: everyone owns what they create. A connection or job marked ``shared``
is visible to and usable by every signed-in user (they may run a shared job and use a
shared connection in their own jobs); only its owner or an admin may change or delete it.
Admins see and change everything. Anything a user may not see is reported as not found,
so ids leak nothing.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import bindparam, or_
from sqlalchemy.sql import ColumnElement

from dancecat_core.errors import NotFound
from dancecat_core.models import Connection, Job, User

Owned = TypeVar("Owned", Connection, Job)


def can_see(actor: User | None, obj: Connection | Job) -> bool:
    return actor is None or actor.is_admin or obj.owner_id == actor.id or bool(obj.shared)


def can_change(actor: User | None, obj: Connection | Job) -> bool:
    return actor is None or actor.is_admin or obj.owner_id == actor.id


def visible_filter(actor: User | None, model: type[Connection] | type[Job]) -> ColumnElement[bool]:
    """A WHERE clause selecting the rows of ``model`` that ``actor`` may see."""
    if actor is None or actor.is_admin:
        return model.id.is_not(None)
    return or_(model.owner_id == actor.id, model.shared.is_(True))


def sees_everything(actor: User | None) -> bool:
    """Whether ``visible_filter`` lets ``actor`` see every row (admins, the system)."""
    return actor is None or actor.is_admin


def visible_filter_parameter(
    model: type[Connection] | type[Job], everyone: bool
) -> ColumnElement[bool]:
    """``visible_filter`` for a statement built once and run for many actors: the actor's
    id is the bound parameter ``actor_id`` (``{"actor_id": actor.id}`` when run), and
    ``everyone`` stands for an actor who ``sees_everything``."""
    return visible_filter(None if everyone else _ActorParameter, model)  # type: ignore[arg-type]


class _ActorParameter:
    """A non-admin actor whose id is a bound parameter, for ``visible_filter_parameter``."""

    is_admin = False
    id = bindparam("actor_id")


def require_visible(actor: User | None, obj: Owned | None, what: str) -> Owned:
    """``obj`` if it exists, is not deleted and ``actor`` may see it; else ``NotFound``."""
    if obj is None or obj.deleted_at is not None or not can_see(actor, obj):
        raise NotFound(f"{what} not found")
    return obj


def require_changeable(actor: User | None, obj: Owned | None, what: str) -> Owned:
    """Like ``require_visible``, and ``actor`` must own it or be an admin."""
    obj = require_visible(actor, obj, what)
    if not can_change(actor, obj):
        raise NotFound(f"{what} not found")
    return obj

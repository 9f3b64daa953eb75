"""How a command line names a job or a connection: by name, or ``id:N`` for the one with
id N. A name is never read as an id, so a job called "2024" stays reachable by its name
and the job with id 2024 is ``id:2024``. A name two visible objects share (two owners',
or an old database's duplicates) is refused with their ids.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session

from dancecat_core.errors import Conflict, NotFound, ValidationError
from dancecat_core.models import Connection, Job
from dancecat_core.services import connections, jobs

Found = TypeVar("Found", Job, Connection)
ID_PREFIX = "id:"
REFERENCE_HELP = "a name, or id:N"


def _id(reference: str, what: str) -> int | None:
    if not reference.startswith(ID_PREFIX):
        return None
    number = reference[len(ID_PREFIX) :]
    if not (number.isascii() and number.isdigit()) or not 0 < int(number) < 2**62:
        raise ValidationError(f"{what}: {reference!r} is not id:N with N a positive number")
    return int(number)


def _named(find: Callable[[], Found], reference: str, what: str) -> Found:
    try:
        return find()
    except Conflict as exc:  # two owners' objects, or an old database's duplicates
        raise Conflict(f"{exc}: name the one you mean as {ID_PREFIX}N") from None
    except NotFound:
        hint = f" (the {what} with id {reference} is {ID_PREFIX}{reference})"
        raise NotFound(
            f"no {what} named {reference!r}" + (hint if reference.isdigit() else "")
        ) from None


def job(session: Session, reference: str) -> Job:
    """The job a command line names (see the module docstring)."""
    number = _id(reference, "job")
    if number is not None:
        return jobs.get(session, None, number)
    return _named(lambda: jobs.get_by_name(session, None, reference), reference, "job")


def connection(session: Session, reference: str) -> Connection:
    """The connection a command line names (see the module docstring)."""
    number = _id(reference, "connection")
    if number is not None:
        return connections.get(session, None, number)
    return _named(
        lambda: connections.get_by_name(session, None, reference), reference, "connection"
    )

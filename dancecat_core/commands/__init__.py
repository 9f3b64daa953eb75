"""What the console's commands share: the app database, the runtime, and how a command line
names a job or a connection.

A command that only reads and writes the app database asks for ``sessions_for``: settings
and an engine, no plugins (no driver, exporter or store is imported). One that runs
queries or reads results asks for ``runtime_for``, which builds the plugins on the same
engine.

A JOB or CONNECTION argument is a name, or ``id:N`` for the one with id N (a name is
never read as an id, so a job called "2024" stays reachable by its name).

(The services are imported under other names: ``dancecat_core.commands.jobs`` is a
sub-module of this package, and importing it sets ``jobs`` here.)
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from dancecat_core import db
from dancecat_core.errors import ConfigError, Conflict, NotFound, ValidationError
from dancecat_core.models import Connection, Job
from dancecat_core.runtime import Runtime, build_runtime
from dancecat_core.services import connections as connection_service
from dancecat_core.services import jobs as job_service
from dancecat_core.settings import Settings, load_settings

Found = TypeVar("Found", Job, Connection)
ID_PREFIX = "id:"
REFERENCE_HELP = "a name, or id:N"


@functools.cache
def _database(config: str | None) -> tuple[Settings, Engine]:
    settings = load_settings(config)
    return settings, db.get_engine(settings.database_url)


@functools.cache
def _runtime(config: str | None) -> Runtime:
    settings, engine = _database(config)
    return build_runtime(settings, engine=engine)


def _check_schema(engine: Engine) -> None:
    try:
        ready = inspect(engine).has_table("alembic_version")
    except (OperationalError, ProgrammingError) as exc:
        raise ConfigError(
            f"setting DATABASE_URL: cannot open the app database ({exc.orig})"
        ) from None
    if not ready:
        raise ConfigError("the app database is not initialised: run `dancecat init` first")


def settings_for(args: argparse.Namespace) -> Settings:
    return _database(args.config)[0]


def sessions_for(args: argparse.Namespace) -> sessionmaker[Session]:
    """Sessions on the initialised app database, without loading any plugin."""
    _, engine = _database(args.config)
    _check_schema(engine)
    return db.get_session_factory(engine)


def runtime_for(args: argparse.Namespace, *, check_schema: bool = True) -> Runtime:
    """The runtime for this invocation; refuses to work on an uninitialised app database."""
    runtime = _runtime(args.config)
    if check_schema:
        _check_schema(runtime.engine)
    return runtime


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
        return job_service.get(session, None, number)
    return _named(lambda: job_service.get_by_name(session, None, reference), reference, "job")


def connection(session: Session, reference: str) -> Connection:
    """The connection a command line names (see the module docstring)."""
    number = _id(reference, "connection")
    if number is not None:
        return connection_service.get(session, None, number)
    return _named(
        lambda: connection_service.get_by_name(session, None, reference), reference, "connection"
    )

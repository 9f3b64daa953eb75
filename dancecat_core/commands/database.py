"""The app database for a console command: settings, an engine and sessions, without
loading any plugin (no driver, exporter or result store is imported)."""

from __future__ import annotations

import argparse
import functools

from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from dancecat_core import db
from dancecat_core.errors import ConfigError
from dancecat_core.settings import CORE_SETTINGS, Settings, load_settings


@functools.cache
def database(config: str | None) -> tuple[Settings, Engine]:
    """This invocation's settings and app database engine (one per process)."""
    settings = load_settings(config, specs=CORE_SETTINGS)
    return settings, db.get_engine(settings.database_url)


def check_schema(engine: Engine) -> None:
    """Refuse to work on an app database ``dancecat init`` has not made."""
    try:
        ready = inspect(engine).has_table("alembic_version")
    except (OperationalError, ProgrammingError) as exc:
        raise ConfigError(
            f"setting DATABASE_URL: cannot open the app database ({exc.orig})"
        ) from None
    if not ready:
        raise ConfigError("the app database is not initialised: run `dancecat init` first")


def settings_for(args: argparse.Namespace) -> Settings:
    return database(args.config)[0]


def sessions_for(args: argparse.Namespace) -> sessionmaker[Session]:
    """Sessions on the initialised app database."""
    _, engine = database(args.config)
    check_schema(engine)
    return db.get_session_factory(engine)

"""Console command groups; each module exposes ``register(subparsers)``."""

from __future__ import annotations

import argparse
import functools

from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError, ProgrammingError

from dancecat_core.errors import ConfigError
from dancecat_core.runtime import Runtime, build_runtime
from dancecat_core.settings import load_settings


@functools.cache
def _runtime(config: str | None) -> Runtime:
    return build_runtime(load_settings(config))


def runtime_for(args: argparse.Namespace, *, check_schema: bool = True) -> Runtime:
    """The runtime for this invocation; refuses to work on an uninitialised app database."""
    runtime = _runtime(args.config)
    if check_schema:
        try:
            ready = inspect(runtime.engine).has_table("alembic_version")
        except (OperationalError, ProgrammingError) as exc:
            raise ConfigError(
                f"setting DATABASE_URL: cannot open the app database ({exc.orig})"
            ) from None
        if not ready:
            raise ConfigError("the app database is not initialised: run `dancecat init` first")
    return runtime

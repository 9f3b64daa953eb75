"""The runtime for a console command that runs queries, reads results or checks
connections: the app database of ``database`` with every plugin loaded."""

from __future__ import annotations

import argparse
import functools

from dancecat_core.commands import database as appdb
from dancecat_core.console import starting_up
from dancecat_core.runtime import Runtime, build_runtime


@functools.cache
def _runtime(config: str | None) -> Runtime:
    with starting_up():  # the plugins' imports are start-up too
        settings, engine = appdb.database(config)
        return build_runtime(settings, engine=engine)


def runtime_for(args: argparse.Namespace, *, check_schema: bool = True) -> Runtime:
    """The runtime for this invocation; refuses to work on an uninitialised app database
    unless told not to check (``dancecat init``)."""
    runtime = _runtime(args.config)
    if check_schema:
        appdb.check_schema(runtime.engine)
    return runtime

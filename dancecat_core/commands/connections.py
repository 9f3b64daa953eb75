"""``dancecat connection add | list | edit | remove | test``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dancecat_core.commands import output, references
from dancecat_core.commands.context import runtime_for
from dancecat_core.commands.database import sessions_for
from dancecat_core.console import one_line
from dancecat_core.db import session_scope
from dancecat_core.errors import Conflict
from dancecat_core.inputs.connection import ConnectionInput
from dancecat_core.inputs.console import add_arguments, from_args
from dancecat_core.models import Connection
from dancecat_core.services import connections, probes

CONNECTION_HELP = f"the connection: {references.REFERENCE_HELP}"
LIST_COLUMNS = ("id", "name", "driver", "host", "port", "database", "user", "mode", "shared")


def declare(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="connection_command", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="add a connection")
    add_arguments(add, ConnectionInput)
    add.set_defaults(handler=add_command)

    listing = actions.add_parser("list", help="list connections")
    output.add_json_flag(listing)
    listing.set_defaults(handler=list_command)

    edit = actions.add_parser(
        "edit",
        help="change the fields given; the others (the password too) stay as they are",
    )
    edit.add_argument("connection", help=CONNECTION_HELP)
    add_arguments(edit, ConnectionInput, editing=True)
    edit.set_defaults(handler=edit_command)

    remove = actions.add_parser("remove", help="delete a connection no job uses")
    remove.add_argument("connection", help=CONNECTION_HELP)
    remove.add_argument(
        "--force",
        action="store_true",
        help="also when jobs use it (they show 'connection deleted' and cannot run)",
    )
    remove.set_defaults(handler=remove_command)

    test = actions.add_parser("test", help="connect and run SELECT 1")
    test.add_argument("connection", help=CONNECTION_HELP)
    test.set_defaults(handler=test_command)


def _mode(connection: Connection) -> str:
    return "read-only" if connection.read_only else "read-write"


def add_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    data = from_args(ConnectionInput, args)
    with session_scope(runtime.session_factory) as session:
        connection = connections.create(runtime, session, None, data)
        print(f"connection {connection.id} {connection.name} added ({_mode(connection)})")
    return 0


def _row(c: Connection) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "driver": c.driver,
        "host": c.host,
        "port": c.port,
        "database": c.database,
        "user": c.user_name,
        "mode": _mode(c),
        "shared": bool(c.shared),
    }


def list_command(args: argparse.Namespace) -> int:
    with session_scope(sessions_for(args)) as session:
        rows = [_row(c) for c in connections.list_visible(session, None)]
    output.emit(LIST_COLUMNS, rows, args.json)
    return 0


def edit_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    data = from_args(ConnectionInput, args)
    with session_scope(runtime.session_factory) as session:
        connection = references.connection(session, args.connection)
        connection = connections.update(runtime, session, None, connection.id, data)
        print(f"connection {connection.id} {connection.name} changed ({_mode(connection)})")
    return 0


def remove_command(args: argparse.Namespace) -> int:
    with session_scope(sessions_for(args)) as session:
        connection = references.connection(session, args.connection)
        using = connections.jobs_using(session, None, connection.id)
        if using and not args.force:
            names = ", ".join(f"{job.id} {job.name}" for job in using[:5])
            more = f" and {len(using) - 5} more" if len(using) > 5 else ""
            raise Conflict(
                f"connection {connection.id} {connection.name} is used by {len(using)} job(s) "
                f"({names}{more}): they could not run any more; remove it with --force"
            )
        connections.delete(session, None, connection.id)
        print(f"connection {connection.id} {connection.name} removed")
    return 0


def test_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        connection = references.connection(session, args.connection)
        ok, error, elapsed = probes.check(runtime, connection)
    if ok:
        print(f"ok ({elapsed} ms)")
        return 0
    print(f"error: failed after {elapsed} ms: {one_line(error or '')}", file=sys.stderr)
    return 1

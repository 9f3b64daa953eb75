"""``dancecat connection add | list | test``."""

from __future__ import annotations

import argparse
import sys

from dancecat_core.commands import runtime_for
from dancecat_core.db import session_scope
from dancecat_core.services import connections
from dancecat_core.services.connections import ConnectionInput


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("connection", help="databases that jobs query")
    commands = group.add_subparsers(dest="connection_command", metavar="ACTION", required=True)

    add = commands.add_parser("add", help="add a connection")
    add.add_argument("name")
    add.add_argument("--driver", required=True, help="sqlite, postgresql, mysql, ...")
    add.add_argument("--host")
    add.add_argument("--port", type=int)
    add.add_argument("--database", required=True, help="database name (file path for sqlite)")
    add.add_argument("--user")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (never from the command line)",
    )
    add.add_argument(
        "--read-write",
        action="store_true",
        help="allow queries that change data (connections are read-only by default)",
    )
    add.add_argument("--shared", action="store_true", help="let every user use it")
    add.set_defaults(handler=add_command)

    listing = commands.add_parser("list", help="list connections")
    listing.set_defaults(handler=list_command)

    test = commands.add_parser("test", help="connect and run SELECT 1")
    test.add_argument("name")
    test.set_defaults(handler=test_command)


def add_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None
    data = ConnectionInput(
        name=args.name,
        driver=args.driver,
        host=args.host,
        port=args.port,
        database=args.database,
        user=args.user,
        password=password,
        read_only=not args.read_write,
        shared=args.shared,
    )
    with session_scope(runtime.session_factory) as session:
        connection = connections.create(runtime, session, None, data)
        print(
            f"connection {connection.id} {connection.name} added "
            f"({'read-only' if connection.read_only else 'read-write'})"
        )
    return 0


def list_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        rows = connections.list_visible(session, None)
        for c in rows:
            where = f"{c.host}:{c.port}/" if c.host else ""
            mode = "read-only" if c.read_only else "read-write"
            print(f"{c.id}\t{c.name}\t{c.driver}\t{where}{c.database}\t{mode}")
        if not rows:
            print("no connections yet: add one with `dancecat connection add`")
    return 0


def test_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        connection = connections.get_by_name(session, None, args.name)
        ok, error, elapsed = connections.check(runtime, connection)
    if ok:
        print(f"ok ({elapsed} ms)")
        return 0
    print(f"failed after {elapsed} ms: {error}", file=sys.stderr)
    return 1

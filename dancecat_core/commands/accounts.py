"""``dancecat add-allowed-user`` and ``dancecat token create``."""

from __future__ import annotations

import argparse

from dancecat_core.commands.context import runtime_for
from dancecat_core.db import session_scope
from dancecat_core.errors import NotFound
from dancecat_core.services import accounts


def declare_allow(allow: argparse.ArgumentParser) -> None:
    allow.add_argument("email")
    allow.add_argument("--admin", action="store_true", help="make this user an admin")
    allow.set_defaults(handler=allow_command)


def declare_token(token: argparse.ArgumentParser) -> None:
    commands = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = commands.add_parser("create", help="create an API token (shown once)")
    create.add_argument("email")
    create.add_argument("--name", default="console")
    create.set_defaults(handler=token_create_command)


def allow_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        allowed = accounts.allow_email(session, args.email, admin=args.admin)
        print(f"{allowed.email} may sign up" + (" (admin)" if allowed.is_admin else ""))
    return 0


def token_create_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        user = accounts.find_user(session, args.email)
        if user is None:
            raise NotFound(f"no user {args.email}: they must sign in once first")
        _, clear = accounts.create_token(session, user, args.name)
    print(clear)
    return 0

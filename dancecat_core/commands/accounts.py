"""``dancecat add-allowed-user``, ``dancecat user list | disable | enable | remove |
reset-password`` and ``dancecat token create``."""

from __future__ import annotations

import argparse
import json

from dancecat_core.commands.context import runtime_for
from dancecat_core.db import session_scope
from dancecat_core.errors import ValidationError
from dancecat_core.inputs.console import add_arguments, from_args
from dancecat_core.inputs.token import TokenInput
from dancecat_core.models import User
from dancecat_core.services import accounts

USER_COLUMNS = ("email", "admin", "status", "last_sign_in", "created")


def declare_allow(allow: argparse.ArgumentParser) -> None:
    allow.add_argument("email")
    allow.add_argument("--admin", action="store_true", help="make this user an admin")
    allow.set_defaults(handler=allow_command)


def declare_user(user: argparse.ArgumentParser) -> None:
    commands = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    listing = commands.add_parser("list", help="every user, tab-separated with a header")
    listing.add_argument("--json", action="store_true", help="a JSON array instead")
    listing.set_defaults(handler=user_list_command)
    for action, handler, text in (
        ("disable", user_disable_command, "end every session and token; the data stays"),
        ("enable", user_enable_command, "let a disabled user sign in again"),
        (
            "reset-password",
            user_reset_command,
            "forget the password (and end the sessions); the next sign-in sets a new one",
        ),
    ):
        command = commands.add_parser(action, help=text)
        command.add_argument("email")
        command.set_defaults(handler=handler)
    alerts = commands.add_parser(
        "alerts", help="an admin gets (on) or stops getting (off) every job's owner alerts"
    )
    alerts.add_argument("email")
    alerts.add_argument("state", choices=("on", "off"))
    alerts.set_defaults(handler=user_alerts_command)
    remove = commands.add_parser(
        "remove", help="delete the user and their allowed-email entry (and their tokens)"
    )
    remove.add_argument("email")
    remove.add_argument(
        "--transfer-to",
        metavar="EMAIL",
        help="who takes over their jobs and connections (required if they own any)",
    )
    remove.set_defaults(handler=user_remove_command)


def declare_token(token: argparse.ArgumentParser) -> None:
    commands = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = commands.add_parser("create", help="create an API token (shown once)")
    create.add_argument("email")
    add_arguments(create, TokenInput)
    create.set_defaults(handler=token_create_command)


def allow_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        allowed = accounts.allow_email(session, args.email, admin=args.admin)
        print(f"{allowed.email} may sign up" + (" (admin)" if allowed.is_admin else ""))
    return 0


def _row(user: User) -> dict[str, str | bool]:
    return {
        "email": user.email,
        "admin": bool(user.is_admin),
        "status": accounts.status(user),
        "last_sign_in": user.last_login_at.isoformat() if user.last_login_at else "",
        "created": user.created_at.isoformat(),
    }


def _cell(value: str | bool) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def user_list_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        rows = [_row(user) for user in accounts.list_users(session, None)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("\t".join(USER_COLUMNS))
    for row in rows:
        print("\t".join(_cell(value) for value in row.values()))
    return 0


def user_disable_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        user = accounts.disable(session, None, accounts.user_by_email(session, None, args.email))
        print(f"{user.email} disabled: every session and token ended; their data stays")
    return 0


def user_enable_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        user = accounts.enable(session, None, accounts.user_by_email(session, None, args.email))
        print(f"{user.email} enabled")
    return 0


def user_reset_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        user = accounts.user_by_email(session, None, args.email)
        accounts.reset_password(session, None, user)
        print(f"{user.email}: password cleared, sessions ended; their next sign-in sets one")
    return 0


def user_alerts_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        user = accounts.user_by_email(session, None, args.email)
        accounts.set_alerts_opt_in(session, None, user, args.state == "on")
        print(f"{user.email}: owner alerts of every job {args.state}")
    return 0


def user_remove_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        user = accounts.user_by_email(session, None, args.email)
        email = user.email
        heir = accounts.user_by_email(session, None, args.transfer_to) if args.transfer_to else None
        try:
            moved = accounts.remove(session, None, user, heir)
        except ValidationError as exc:
            if heir is None and exc.field == "to":
                raise ValidationError(f"{exc} (--transfer-to EMAIL)", exc.field) from None
            raise
        moved_to = f"; {moved} transferred to {heir.email}" if moved and heir else ""
    print(f"{email} removed{moved_to}")
    return 0


def token_create_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        user = accounts.user_by_email(session, None, args.email)
        if not user.is_active:
            raise ValidationError(f"{user.email} is disabled: enable them first")
        if user.password_hash is None:
            raise ValidationError(f"{user.email} has no password yet: they must sign in first")
        name = from_args(TokenInput, args).given().get("name", "")  # unset: the default
        _, clear = accounts.create_token(session, user, name)
    print(clear)
    return 0

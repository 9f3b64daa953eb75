"""``dancecat pull-url create|list|rotate|revoke`` and ``dancecat trigger create|list|revoke``.

A new URL (and a trigger's secret) is printed once, on creation; lists show only the
token's first characters. URLs are built on ``BASE_URL``.
"""

from __future__ import annotations

import argparse
from typing import Any

from dancecat_core.commands import output, references
from dancecat_core.commands.context import runtime_for
from dancecat_core.db import session_scope
from dancecat_core.errors import NotFound
from dancecat_core.inputs.console import add_arguments, from_args
from dancecat_core.inputs.job_urls import PullUrlInput, TriggerInput
from dancecat_core.models import PullUrl, Trigger
from dancecat_core.services import job_urls

JOB_HELP = f"the job: {references.REFERENCE_HELP}"
LIST_COLUMNS = ("id", "name", "prefix", "active", "created_at", "last_used_at", "revoked_at")


def _actions(parser: argparse.ArgumentParser, what: str, new_input: type, rotate: bool) -> Any:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help=f"make a {what} (shown once)")
    create.add_argument("job", help=JOB_HELP)
    add_arguments(create, new_input)
    listing = actions.add_parser("list", help=f"the job's {what}s, newest first")
    listing.add_argument("job", help=JOB_HELP)
    output.add_json_flag(listing)
    listing.set_defaults(handler=list_command)
    names = ["revoke", "rotate"] if rotate else ["revoke"]
    for name in names:
        sub = actions.add_parser(
            name,
            help=f"stop the {what} at once"
            + ("; a new one with its name is printed" if name == "rotate" else ""),
        )
        sub.add_argument("job", help=JOB_HELP)
        sub.add_argument("id", type=int, help=f"the {what}'s id (from list)")
        sub.set_defaults(handler=change_command)
    return create


def declare_pull_url(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(model=PullUrl, what="pull URL")
    create = _actions(parser, "pull URL", PullUrlInput, rotate=True)
    create.set_defaults(handler=create_pull_url_command)


def declare_trigger(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(model=Trigger, what="trigger")
    create = _actions(parser, "trigger", TriggerInput, rotate=False)
    create.set_defaults(handler=create_trigger_command)


def _pull_links(base_url: str, clear: str) -> str:
    first, *others = job_urls.PULL_FORMATS
    more = ", ".join(f"{fmt.upper()}: {base_url}/pull/{clear}.{fmt}" for fmt in others)
    return f"{base_url}/pull/{clear}.{first}" + (f"  ({more})" if more else "")


def create_pull_url_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        job = references.job(session, args.job)
        url, clear = job_urls.create_pull_url(session, None, job.id, from_args(PullUrlInput, args))
        print(f"pull URL {url.id} for job {job.id} {job.name}: ", end="")
        print(_pull_links(runtime.settings.base_url, clear))
    return 0


def create_trigger_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        job = references.job(session, args.job)
        trigger, clear, secret = job_urls.create_trigger(
            runtime, session, None, job.id, from_args(TriggerInput, args)
        )
        link = f"{runtime.settings.base_url}/trigger/{clear}"
        print(f"trigger {trigger.id} for job {job.id} {job.name}: POST {link}")
        if secret:
            print(f"signing secret (X-DanceCat-Signature: sha256=HMAC of the body): {secret}")
    return 0


def _row(url: PullUrl | Trigger) -> dict[str, Any]:
    return {
        "id": url.id,
        "name": url.name,
        "prefix": url.prefix + "…",
        "active": url.revoked_at is None,
        "created_at": output.timestamp(url.created_at),
        "last_used_at": output.timestamp(url.last_used_at),
        "revoked_at": output.timestamp(url.revoked_at),
    }


def list_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    listing = job_urls.list_pull_urls if args.model is PullUrl else job_urls.list_triggers
    with session_scope(runtime.session_factory) as session:
        job = references.job(session, args.job)
        rows = [_row(url) for url in listing(session, None, job.id)]
    output.emit(LIST_COLUMNS, rows, args.json)
    return 0


def change_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        job = references.job(session, args.job)
        url = session.get(args.model, args.id)
        if url is None or url.job_id != job.id:
            raise NotFound(f"job {job.id} {job.name} has no {args.what} {args.id}")
        if args.action == "rotate":
            new, clear = job_urls.rotate_pull_url(session, None, url.id)
            print(f"pull URL {url.id} revoked; pull URL {new.id}: ", end="")
            print(_pull_links(runtime.settings.base_url, clear))
            return 0
        revoke = job_urls.revoke_pull_url if args.model is PullUrl else job_urls.revoke_trigger
        revoke(session, None, url.id)
        print(f"{args.what} {url.id} revoked")
    return 0

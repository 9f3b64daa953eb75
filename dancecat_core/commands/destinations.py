"""``dancecat destination test URL [--job JOB]``: send a sample message to a destination now."""

from __future__ import annotations

import argparse

from dancecat_core import destinations
from dancecat_core.commands import references
from dancecat_core.commands.context import runtime_for
from dancecat_core.db import session_scope


def declare(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="destination_command", metavar="ACTION", required=True)
    test = actions.add_parser("test", help="send a sample message to a destination now")
    test.add_argument(
        "url", metavar="URL", help="an email address or URL, as typed or as a job shows it"
    )
    test.add_argument(
        "--job",
        help="use this job's stored secrets for URL given as the job shows it (masked): "
        + references.REFERENCE_HELP,
    )
    test.set_defaults(handler=test_command)


def test_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    stored: dict[str, dict[str, str]] = {}
    job_name = "DanceCat test"
    if args.job is not None:
        with session_scope(runtime.session_factory) as session:
            job = references.job(session, args.job)
            stored = destinations.stored_secrets(runtime.secret_box, job.recipients)
            job_name = job.name
    saved = destinations.send_test(
        runtime.notifiers,
        args.url,
        stored,
        job_name=job_name,
        patterns=runtime.value_patterns,
    )
    if saved.announce:
        print(f"signed with a one-off {saved.announce}")
    print(f"test message sent to {saved.shown}")
    return 0

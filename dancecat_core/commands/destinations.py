"""``dancecat destination test URL [--job JOB]``: send a sample message to a destination now
(``services.destination_tests``, the same as the job page's button and the API)."""

from __future__ import annotations

import argparse

from dancecat_core.commands import references
from dancecat_core.commands.context import runtime_for
from dancecat_core.db import session_scope
from dancecat_core.errors import DancecatError
from dancecat_core.inputs.destination_test import DestinationTestInput
from dancecat_core.services import destination_tests


def declare(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="destination_command", metavar="ACTION", required=True)
    test = actions.add_parser("test", help="send a sample message to a destination now")
    test.add_argument(
        "url", metavar="URL", help=DestinationTestInput.field("destination").help
    )
    test.add_argument(
        "--job",
        help="use this job's stored secrets for URL given as the job shows it (masked): "
        + references.REFERENCE_HELP,
    )
    test.set_defaults(handler=test_command)


def test_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    data = DestinationTestInput(destination=args.url)
    with session_scope(runtime.session_factory) as session:
        job = references.job(session, args.job) if args.job is not None else None
        outcome = destination_tests.send_typed(runtime, data, job=job)
    if not outcome.sent:
        raise DancecatError(f"{outcome.destination}: {outcome.error}")
    if outcome.announce:
        print(f"signed with a one-off {outcome.announce}")
    print(f"test message sent to {outcome.destination}")
    return 0

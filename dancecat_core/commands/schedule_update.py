"""``dancecat schedule_update``: advance schedules whose next run passed while nothing was
running (after downtime), enqueuing a catch-up run where a schedule's policy says so."""

from __future__ import annotations

import argparse

from dancecat_core import tasks
from dancecat_core.commands.context import runtime_for
from dancecat_core.scheduler import check_due


def declare(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--skip-missed",
        action="store_true",
        help="skip missed occurrences even for schedules whose policy is to catch up once",
    )
    parser.set_defaults(handler=update_command)


def update_command(args: argparse.Namespace) -> int:
    """Idempotent: a second run right after the first finds nothing outdated."""
    runtime = runtime_for(args)
    tasks.configure(runtime=runtime)
    claims = check_due(
        runtime, enqueue=tasks.enqueue_run, only_missed=True, skip_missed=args.skip_missed
    )
    for claim in claims:
        print(claim.describe())
    print(f"{len(claims)} outdated schedule(s) updated" if claims else "no outdated schedules")
    return 0

"""``dancecat schedule add | list | remove``."""

from __future__ import annotations

import argparse
from typing import Any

from dancecat_core import schedules as math
from dancecat_core.commands import output, references
from dancecat_core.commands.database import sessions_for, settings_for
from dancecat_core.db import session_scope
from dancecat_core.models import CatchUp, Schedule, ScheduleType
from dancecat_core.services import schedules as service
from dancecat_core.services.schedules import ScheduleInput


def declare(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="schedule a job")
    add.add_argument("job", help=f"the job: {references.REFERENCE_HELP}")
    add.add_argument("--type", required=True, choices=[t.value for t in ScheduleType])
    add.add_argument("--start", required=True, help="'YYYY-MM-DD HH:MM' in --timezone")
    add.add_argument("--cron", help="five-field cron expression (with --type cron)")
    add.add_argument("--timezone", help="IANA zone, e.g. Europe/Paris (default TIMEZONE)")
    add.add_argument("--inactive", action="store_true", help="save it without running it")
    add.add_argument(
        "--catch-up",
        choices=[c.value for c in CatchUp],
        default=CatchUp.ONCE.value,
        help="after downtime: run once for the missed occurrences (default) or skip them",
    )
    add.set_defaults(handler=add_command)

    listing = actions.add_parser("list", help="list schedules and their next runs")
    listing.add_argument("job", nargs="?", help=f"only this job's: {references.REFERENCE_HELP}")
    output.add_json_flag(listing)
    listing.set_defaults(handler=list_command)

    remove = actions.add_parser("remove", help="delete a schedule")
    remove.add_argument("id", type=int)
    remove.set_defaults(handler=remove_command)


LIST_COLUMNS = (
    "id",
    "job",
    "type",
    "cron",
    "start",
    "timezone",
    "active",
    "catch_up",
    "next_run_local",
    "next_run_at",
)


def _row(schedule: Schedule) -> dict[str, Any]:
    nxt = schedule.next_run_at
    return {
        "id": schedule.id,
        "job": schedule.job.name,
        "job_id": schedule.job_id,
        "type": schedule.type,
        "cron": schedule.cron,
        "start": f"{schedule.start_local:%Y-%m-%d %H:%M}",
        "timezone": schedule.timezone,
        "active": bool(schedule.active),
        "catch_up": schedule.catch_up,
        "next_run_local": math.local_text(nxt, schedule.timezone) if nxt else None,
        "next_run_at": output.timestamp(nxt),
    }


def add_command(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    with session_scope(sessions_for(args)) as session:
        job = references.job(session, args.job)
        schedule = service.create(
            session,
            None,
            job.id,
            ScheduleInput(
                type=args.type,
                start=args.start,
                timezone=args.timezone,
                cron=args.cron,
                active=not args.inactive,
                catch_up=args.catch_up,
            ),
            default_timezone=settings.timezone,
        )
        row = _row(schedule)
    print(f"schedule {schedule.id} added: next run {row['next_run_local'] or '-'}")
    return 0


def list_command(args: argparse.Namespace) -> int:
    with session_scope(sessions_for(args)) as session:
        if args.job:
            found = service.list_for_job(session, None, references.job(session, args.job).id)
        else:
            found = service.list_visible(session, None)
        rows = [_row(schedule) for schedule in found]
    columns = LIST_COLUMNS if not args.json else ("id", "job_id", *LIST_COLUMNS[1:])
    output.emit(columns, rows, args.json)
    return 0


def remove_command(args: argparse.Namespace) -> int:
    with session_scope(sessions_for(args)) as session:
        schedule = service.delete(session, None, args.id)
        print(f"schedule {schedule.id} removed")
    return 0

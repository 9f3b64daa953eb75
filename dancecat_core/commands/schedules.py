"""``dancecat schedule add | edit | list | remove``."""

from __future__ import annotations

import argparse
from typing import Any

from dancecat_core import schedule_kinds
from dancecat_core import schedules as math
from dancecat_core.commands import output, references
from dancecat_core.commands.database import sessions_for, settings_for
from dancecat_core.db import session_scope
from dancecat_core.inputs.console import add_arguments, from_args
from dancecat_core.inputs.schedule import ScheduleInput
from dancecat_core.models import Schedule
from dancecat_core.plugins import get_plugin_manager
from dancecat_core.services import schedules as service

ID_HELP = "the schedule's id (see `schedule list`)"


def schedule_id(text: str) -> int:
    """A schedule id as the command line gives it: a positive whole number."""
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 2**62:
        raise argparse.ArgumentTypeError(f"{text!r} is not a schedule id (a positive number)")
    return int(text)


def declare(parser: argparse.ArgumentParser) -> None:
    schedule_kinds.load(get_plugin_manager())  # ``--type``'s choices: the installed types
    actions = parser.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="schedule a job")
    add.add_argument("job", help=f"the job: {references.REFERENCE_HELP}")
    add_arguments(add, ScheduleInput)
    add.set_defaults(handler=add_command)

    edit = actions.add_parser("edit", help="change the fields given; the others stay as they are")
    edit.add_argument("id", type=schedule_id, help=ID_HELP)
    add_arguments(edit, ScheduleInput, editing=True)
    edit.set_defaults(handler=edit_command)

    listing = actions.add_parser("list", help="list schedules and their next runs")
    listing.add_argument("job", nargs="?", help=f"only this job's: {references.REFERENCE_HELP}")
    output.add_json_flag(listing)
    listing.set_defaults(handler=list_command)

    remove = actions.add_parser("remove", help="delete a schedule")
    remove.add_argument("id", type=schedule_id, help=ID_HELP)
    remove.set_defaults(handler=remove_command)


LIST_COLUMNS = (
    "id",
    "job",
    "type",
    "cron",
    "start",
    "timezone",
    "status",
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
        "status": schedule.status,
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
            from_args(ScheduleInput, args),
            default_timezone=settings.timezone,
        )
        row = _row(schedule)
    print(f"schedule {schedule.id} added: next run {row['next_run_local'] or '-'}")
    return 0


def edit_command(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    with session_scope(sessions_for(args)) as session:
        schedule = service.update(
            session,
            None,
            args.id,
            from_args(ScheduleInput, args),
            default_timezone=settings.timezone,
        )
        row = _row(schedule)
    print(f"schedule {schedule.id} changed: next run {row['next_run_local'] or '-'}")
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

"""``dancecat schedule add | list | remove`` and ``dancecat schedule_update``."""

from __future__ import annotations

import argparse

from dancecat_core import schedules as math
from dancecat_core.commands import runtime_for
from dancecat_core.db import session_scope
from dancecat_core.models import CatchUp, ScheduleType
from dancecat_core.services import jobs
from dancecat_core.services import schedules as service
from dancecat_core.services.schedules import ScheduleInput


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("schedule", help="when jobs run by themselves")
    commands = group.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)

    add = commands.add_parser("add", help="schedule a job")
    add.add_argument("job", help="job name")
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

    listing = commands.add_parser("list", help="list schedules and their next runs")
    listing.add_argument("job", nargs="?", help="only this job's schedules")
    listing.set_defaults(handler=list_command)

    remove = commands.add_parser("remove", help="delete a schedule")
    remove.add_argument("id", type=int)
    remove.set_defaults(handler=remove_command)

    outdated = subparsers.add_parser(
        "schedule_update",
        help="advance schedules whose next run passed while nothing was running",
    )
    outdated.add_argument(
        "--skip-missed",
        action="store_true",
        help="skip missed occurrences even for schedules whose policy is to catch up once",
    )
    outdated.set_defaults(handler=update_command)


def _line(schedule) -> str:
    kind = schedule.type + (f" '{schedule.cron}'" if schedule.cron else "")
    state = "active" if schedule.active else "inactive"
    nxt = schedule.next_run_at
    utc = nxt.strftime("%Y-%m-%d %H:%M UTC") if nxt else "-"
    return (
        f"{schedule.id}\t{schedule.job.name}\t{kind}\t"
        f"from {schedule.start_local:%Y-%m-%d %H:%M} {schedule.timezone}\t{state}\t"
        f"catch-up {schedule.catch_up}\tnext: {math.local_text(nxt, schedule.timezone)}"
        f" ({utc})"
    )


def add_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        job = jobs.get_by_name(session, None, args.job)
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
            default_timezone=runtime.settings.timezone,
        )
        print(f"schedule {schedule.id} added")
        print(_line(schedule))
    return 0


def list_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        if args.job:
            rows = service.list_for_job(session, None, jobs.get_by_name(session, None, args.job).id)
        else:
            rows = service.list_visible(session, None)
        for schedule in rows:
            print(_line(schedule))
        if not rows:
            print("no schedules: add one with `dancecat schedule add`")
    return 0


def remove_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        schedule = service.delete(session, None, args.id)
        print(f"schedule {schedule.id} removed")
    return 0


def update_command(args: argparse.Namespace) -> int:
    """Idempotent: a second run right after the first finds nothing outdated."""
    from dancecat_core.scheduler import check_due
    from dancecat_core.tasks import configure, enqueue_run

    runtime = runtime_for(args)
    configure(runtime=runtime)
    claims = check_due(runtime, enqueue=enqueue_run, only_missed=True, skip_missed=args.skip_missed)
    for claim in claims:
        print(claim.describe())
    print(f"{len(claims)} outdated schedule(s) updated" if claims else "no outdated schedules")
    return 0

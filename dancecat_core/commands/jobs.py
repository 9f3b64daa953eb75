"""``dancecat job add | list | edit | remove | run`` (``run`` itself: ``job_run``)."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.orm import Session

from dancecat_core.commands import output, references
from dancecat_core.commands.context import runtime_for
from dancecat_core.commands.database import sessions_for
from dancecat_core.db import session_scope
from dancecat_core.errors import Conflict
from dancecat_core.inputs.console import add_arguments, from_args
from dancecat_core.inputs.job import JobInput
from dancecat_core.inputs.run import RunInput
from dancecat_core.models import Job
from dancecat_core.services import jobs

JOB_HELP = f"the job: {references.REFERENCE_HELP}"
NOTES = {
    "connection_id": f"On the console: {references.REFERENCE_HELP}",
    "after_job_id": f"On the console: {references.REFERENCE_HELP}",
}
LIST_COLUMNS = ("id", "name", "connection", "shared", "runs", "updated_at")


def declare(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="job_command", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="save a query as a job")
    add_arguments(add, JobInput, notes=NOTES)
    add.set_defaults(handler=add_command)

    listing = actions.add_parser("list", help="list jobs (most recently changed first)")
    output.add_json_flag(listing)
    listing.set_defaults(handler=list_command)

    edit = actions.add_parser("edit", help="change the fields given; the others stay as they are")
    edit.add_argument("job", help=JOB_HELP)
    add_arguments(edit, JobInput, editing=True, notes=NOTES)
    edit.set_defaults(handler=edit_command)

    remove = actions.add_parser("remove", help="delete a job (its past runs stay listed)")
    remove.add_argument("job", help=JOB_HELP)
    remove.add_argument(
        "--force", action="store_true", help="also when active schedules would stop for good"
    )
    remove.set_defaults(handler=remove_command)

    run = actions.add_parser("run", help="run a job now and wait for it")
    run.add_argument("job", help=JOB_HELP)
    add_arguments(run, RunInput)
    how = run.add_mutually_exclusive_group()
    how.add_argument(
        "--background",
        action="store_true",
        help="enqueue for a worker and print the run id instead of waiting",
    )
    how.add_argument(
        "--no-notify",
        action="store_true",
        help="send no notifications about this run (by default its recipients are told)",
    )
    run.set_defaults(handler="dancecat_core.commands.job_run:run_command")


def _input(session: Session, args: argparse.Namespace) -> JobInput:
    """The fields given, the connection and the job it runs after (a name or id:N) as
    their ids."""
    return from_args(
        JobInput,
        args,
        resolve={
            "connection_id": lambda reference: references.connection(session, reference).id,
            "after_job_id": lambda reference: references.job(session, reference).id,
        },
    )


def add_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        job = jobs.create(runtime, session, None, _input(session, args))
        print(f"job {job.id} {job.name} added")
        _announce(job)
    return 0


def _announce(job: Job) -> None:
    """Print the secrets generated for new destinations: this is the only time they show."""
    for line in job.announcements:
        print(line)


def _row(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "connection": job.connection.name + (" (deleted)" if job.connection.is_deleted else ""),
        "shared": bool(job.shared),
        "runs": job.run_count or 0,
        "updated_at": output.timestamp(job.updated_at),
    }


def list_command(args: argparse.Namespace) -> int:
    with session_scope(sessions_for(args)) as session:
        rows = [_row(job) for job in jobs.list_visible(session, None)]
    output.emit(LIST_COLUMNS, rows, args.json)
    return 0


def edit_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        job = references.job(session, args.job)
        job = jobs.update(runtime, session, None, job.id, _input(session, args))
        print(f"job {job.id} {job.name} changed")
        _announce(job)
    return 0


def remove_command(args: argparse.Namespace) -> int:
    with session_scope(sessions_for(args)) as session:
        job = references.job(session, args.job)
        active = jobs.active_schedule_count(session, job.id)
        if active and not args.force:
            raise Conflict(
                f"job {job.id} {job.name} has {active} active schedule(s) that would stop "
                "for good: remove it with --force"
            )
        jobs.delete(session, None, job.id)
        print(f"job {job.id} {job.name} removed")
    return 0

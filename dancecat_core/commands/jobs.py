"""``dancecat job add | list | edit | remove | run`` (``run`` itself: ``job_run``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dancecat_core.commands import output, references
from dancecat_core.commands.database import sessions_for
from dancecat_core.db import session_scope
from dancecat_core.errors import Conflict, ValidationError
from dancecat_core.models import Job
from dancecat_core.services import jobs
from dancecat_core.services.jobs import JobInput

JOB_HELP = f"the job: {references.REFERENCE_HELP}"
LIST_COLUMNS = ("id", "name", "connection", "shared", "runs", "updated_at")


def declare(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="job_command", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="save a query as a job")
    add.add_argument("name")
    _fields(add, editing=False)
    add.set_defaults(handler=add_command)

    listing = actions.add_parser("list", help="list jobs (most recently changed first)")
    output.add_json_flag(listing)
    listing.set_defaults(handler=list_command)

    edit = actions.add_parser("edit", help="change the fields given; the others stay as they are")
    edit.add_argument("job", help=JOB_HELP)
    edit.add_argument("--name", help="a new name")
    _fields(edit, editing=True)
    edit.set_defaults(handler=edit_command)

    remove = actions.add_parser("remove", help="delete a job (its past runs stay listed)")
    remove.add_argument("job", help=JOB_HELP)
    remove.add_argument(
        "--force", action="store_true", help="also when active schedules would stop for good"
    )
    remove.set_defaults(handler=remove_command)

    run = actions.add_parser("run", help="run a job now and wait for it")
    run.add_argument("job", help=JOB_HELP)
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


def _fields(parser: argparse.ArgumentParser, *, editing: bool) -> None:
    """A job's fields, for ``add`` (required ones required) and ``edit`` (all optional:
    a field not given keeps its value)."""
    parser.add_argument(
        "--connection", required=not editing, help=f"the connection: {references.REFERENCE_HELP}"
    )
    source = parser.add_mutually_exclusive_group(required=not editing)
    source.add_argument("--sql")
    source.add_argument("--sql-file", type=Path)
    timeout = parser.add_mutually_exclusive_group()
    timeout.add_argument("--timeout", help="query timeout in seconds (default DB_TIMEOUT)")
    recipients = parser.add_mutually_exclusive_group()
    recipients.add_argument(
        "--recipient",
        action="append",
        help="email the result to this address after each run (repeatable"
        + ("; replaces the list)" if editing else ")"),
    )
    parser.add_argument("--annotation", help="a note shown with the job")
    parser.add_argument(
        "--shared",
        action=argparse.BooleanOptionalAction,
        help="let every user see and run it" + ("" if editing else " (default: not shared)"),
    )
    if editing:
        timeout.add_argument("--no-timeout", action="store_true", help="use DB_TIMEOUT")
        recipients.add_argument("--no-recipients", action="store_true", help="email nobody")


def _sql(args: argparse.Namespace) -> str | None:
    if args.sql_file is None:
        return args.sql
    try:
        return args.sql_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ValidationError(
            f"--sql-file: cannot read {args.sql_file}: {reason}", "query"
        ) from None


def add_command(args: argparse.Namespace) -> int:
    sql = _sql(args)
    with session_scope(sessions_for(args)) as session:
        connection = references.connection(session, args.connection)
        job = jobs.create(
            session,
            None,
            JobInput(
                name=args.name,
                connection_id=connection.id,
                query=sql or "",
                timeout_seconds=args.timeout,
                recipients=args.recipient or [],
                annotation=args.annotation or "",
                shared=bool(args.shared),
            ),
        )
        print(f"job {job.id} {job.name} added")
    return 0


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
    sql = _sql(args)
    with session_scope(sessions_for(args)) as session:
        job = references.job(session, args.job)
        connection_id = (
            references.connection(session, args.connection).id
            if args.connection is not None
            else job.connection_id
        )
        recipients = [r.email for r in job.recipients]
        if args.no_recipients:
            recipients = []
        elif args.recipient is not None:
            recipients = args.recipient
        timeout: Any = job.timeout_seconds
        if args.no_timeout:
            timeout = None
        elif args.timeout is not None:
            timeout = args.timeout
        job = jobs.update(
            session,
            None,
            job.id,
            JobInput(
                name=job.name if args.name is None else args.name,
                connection_id=connection_id,
                query=job.query if sql is None else sql,
                annotation=job.annotation if args.annotation is None else args.annotation,
                timeout_seconds=timeout,
                recipients=recipients,
                shared=job.shared if args.shared is None else args.shared,
            ),
        )
        print(f"job {job.id} {job.name} changed")
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

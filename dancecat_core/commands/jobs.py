"""``dancecat job add | list | run`` and ``dancecat export``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dancecat_core.commands import runtime_for
from dancecat_core.db import session_scope
from dancecat_core.errors import ValidationError
from dancecat_core.models import TrackerStatus
from dancecat_core.runner import execute_tracker
from dancecat_core.services import connections, jobs, trackers
from dancecat_core.services.jobs import JobInput


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("job", help="saved queries")
    commands = group.add_subparsers(dest="job_command", metavar="ACTION", required=True)

    add = commands.add_parser("add", help="save a query as a job")
    add.add_argument("name")
    add.add_argument("--connection", required=True, help="connection name")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--sql")
    source.add_argument("--sql-file", type=Path)
    add.add_argument("--timeout", help="query timeout in seconds (default DB_TIMEOUT)")
    add.add_argument(
        "--recipient",
        action="append",
        default=[],
        help="email the result to this address after each run (repeatable)",
    )
    add.add_argument("--annotation", default="")
    add.add_argument("--shared", action="store_true", help="let every user see and run it")
    add.set_defaults(handler=add_command)

    listing = commands.add_parser("list", help="list jobs")
    listing.set_defaults(handler=list_command)

    run = commands.add_parser("run", help="run a job now and wait for it")
    run.add_argument("name")
    run.add_argument(
        "--background",
        action="store_true",
        help="enqueue for a worker and print the tracker id instead of waiting",
    )
    run.set_defaults(handler=run_command)

    export = subparsers.add_parser("export", help="write a run's result in a format")
    export.add_argument("tracker_id", type=int)
    export.add_argument("--format", default="csv", help="csv, xlsx, json, ...")
    export.add_argument("-o", "--output", type=Path, help="file to write (default stdout)")
    export.set_defaults(handler=export_command)


def add_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    if args.sql_file:
        try:
            sql = args.sql_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValidationError(
                f"--sql-file: cannot read {args.sql_file}: {exc.strerror}", "query"
            ) from None
    else:
        sql = args.sql
    with session_scope(runtime.session_factory) as session:
        connection = connections.get_by_name(session, None, args.connection)
        job = jobs.create(
            session,
            None,
            JobInput(
                name=args.name,
                connection_id=connection.id,
                query=sql,
                timeout_seconds=args.timeout,
                recipients=args.recipient,
                annotation=args.annotation,
                shared=args.shared,
            ),
        )
        print(f"job {job.id} {job.name} added")
    return 0


def list_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        rows = jobs.list_visible(session, None)
        for job in rows:
            connection = job.connection.name + (" (deleted)" if job.connection.is_deleted else "")
            print(f"{job.id}\t{job.name}\t{connection}\truns: {job.run_count}")
        if not rows:
            print("no jobs yet: add one with `dancecat job add`")
    return 0


def run_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        job = jobs.get_by_name(session, None, args.name)
        tracker = jobs.queue_run(session, None, job.id)
        tracker_id = tracker.id
    if args.background:
        from dancecat_core.tasks import enqueue_run

        enqueue_run(tracker_id)
        print(f"tracker {tracker_id} queued")
        return 0
    outcome = execute_tracker(runtime, tracker_id)
    print(
        f"tracker {tracker_id}: {outcome.status.value}"
        + (f", {outcome.row_count} rows" if outcome.row_count is not None else "")
    )
    if outcome.status != TrackerStatus.SUCCESS:
        print(f"error: {outcome.error}", file=sys.stderr)
        return 1
    with session_scope(runtime.session_factory) as session:
        note = trackers.stored_result(runtime, trackers.get(session, None, tracker_id)).meta
        if note.scrub_note:
            print(note.scrub_note)
    return 0


def export_command(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        tracker = trackers.get(session, None, args.tracker_id)
        download = trackers.export(runtime, tracker, args.format)
    if args.output is None:
        out = sys.stdout.buffer
        for chunk in download.chunks:
            out.write(chunk)
        out.flush()
        return 0
    temp = args.output.with_name(args.output.name + ".partial")
    try:
        with open(temp, "wb") as handle:
            for chunk in download.chunks:
                handle.write(chunk)
        temp.replace(args.output)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise ValidationError(f"--output: cannot write {args.output}: {exc.strerror}") from None
    print(f"wrote {args.output}", file=sys.stderr)
    return 0

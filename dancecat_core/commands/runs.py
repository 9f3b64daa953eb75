"""``dancecat runs [JOB] [--status S] [--limit N]``: runs newest first, with their ids."""

from __future__ import annotations

import argparse
from typing import Any

from dancecat_core import parameters
from dancecat_core.commands import output, references
from dancecat_core.commands.database import sessions_for
from dancecat_core.db import session_scope
from dancecat_core.models import Notification, NotificationStatus, Tracker, TrackerStatus
from dancecat_core.services import trackers

COLUMNS = (
    "id",
    "job",
    "status",
    "queued_at",
    "started_at",
    "finished_at",
    "rows",
    "error",
    "parameters",
    "delivery",
)
MAX_LIMIT = 10_000
STATUS_HELP = ", ".join(s.value.lower().replace(" ", "-") for s in TrackerStatus)


def declare(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", nargs="?", help=f"only this job's runs: {references.REFERENCE_HELP}")
    parser.add_argument("--status", type=_status, help=f"only runs in this status: {STATUS_HELP}")
    parser.add_argument(
        "--limit", type=_limit, default=20, help=f"at most N runs (default 20, at most {MAX_LIMIT})"
    )
    output.add_json_flag(parser)
    parser.set_defaults(handler=runs_command)


def _status(text: str) -> TrackerStatus:
    """A status as shown ("Died in Queue"), in any case, with - or _ for spaces."""
    wanted = " ".join(text.replace("-", " ").replace("_", " ").split()).casefold()
    for status in TrackerStatus:
        if status.value.casefold() == wanted:
            return status
    raise argparse.ArgumentTypeError(f"{text!r} is not a status (one of {STATUS_HELP})")


def _limit(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def _row(run: Tracker) -> dict[str, Any]:
    return {
        "id": run.id,
        "job": run.job.name,
        "job_id": run.job_id,
        "status": run.status,
        "queued_at": output.timestamp(run.queued_at),
        "started_at": output.timestamp(run.started_at),
        "finished_at": output.timestamp(run.finished_at),
        "rows": run.row_count,
        "error": run.error,
        "parameters": parameters.summary(run.parameter_values_json),
        # Each recipient's fate and why: "a@x.com: skipped (no rows); b@x.com: sent (always)".
        "delivery": "; ".join(
            f"{n.recipient}: {n.status}" + (f" ({why})" if (why := _why(n)) else "")
            for n in run.notifications
        ),
    }


def _why(notification: Notification) -> str | None:
    """A failed delivery's error; else why it was sent or skipped (and what fell back)."""
    if notification.status == NotificationStatus.FAILED and notification.last_error:
        return notification.last_error
    return notification.note


def runs_command(args: argparse.Namespace) -> int:
    with session_scope(sessions_for(args)) as session:
        job_id = references.job(session, args.job).id if args.job is not None else None
        found = trackers.list_visible(
            session,
            None,
            job_id=job_id,
            status=args.status.value if args.status else None,
            limit=args.limit,
        )
        rows = [_row(run) for run in found]
    columns = COLUMNS if not args.json else ("id", "job_id", *COLUMNS[1:])
    output.emit(columns, rows, args.json)
    return 0

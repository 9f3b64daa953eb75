"""Models as the JSON the API answers with; the one place their public shape is decided.

Passwords never leave: a connection says only whether it ``has_password``.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable, Sequence
from typing import Any

from dancecat_core import jsontext, parameters
from dancecat_core.error_text import shown_error
from dancecat_core.models import (
    Connection,
    Job,
    Notification,
    PullUrl,
    Tracker,
    Trigger,
    User,
    utcnow,
)
from dancecat_core.models.trackers import current_status
from dancecat_core.runner import Preview
from dancecat_core.scrubbing import ValuePattern
from dancecat_core.services.jobs import recipient_text
from dancecat_core.services.trackers import NotificationRow, RunRow, RunRows


def timestamp(value: dt.datetime | None) -> str | None:
    """An aware datetime as ISO 8601 in UTC (``2024-05-01T12:00:00+00:00``)."""
    if value is None:
        return None
    if value.tzinfo is not dt.UTC:  # the app database's columns read back in UTC already
        value = value.astimezone(dt.UTC)
    return value.isoformat()


def user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "is_admin": bool(user.is_admin)}


def connection_json(connection: Connection) -> dict[str, Any]:
    return {
        "id": connection.id,
        "name": connection.name,
        "driver": connection.driver,
        "host": connection.host,
        "port": connection.port,
        "database": connection.database,
        "user": connection.user_name,
        "has_password": connection.password_encrypted is not None,
        "read_only": bool(connection.read_only),
        "shared": bool(connection.shared),
        "options": connection.options,
        "owner_id": connection.owner_id,
        "created_at": timestamp(connection.created_at),
        "updated_at": timestamp(connection.updated_at),
    }


def job_json(job: Job, schedules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "annotation": job.annotation or "",
        "connection_id": job.connection_id,
        "connection_deleted": job.connection.is_deleted,
        "query": job.query,
        "parameters": [p.to_json() for p in parameters.load(job.parameters_json)],
        "timeout_seconds": job.timeout_seconds,
        "recipients": [recipient_text(recipient) for recipient in job.recipients],
        "subject_template": job.subject_template,
        "body_template": job.body_template,
        "filename_template": job.filename_template,
        "body_rows": job.body_rows or 0,
        "alert_after_failures": job.alert_after_failures,
        "schedules": schedules,
        "after_job_id": job.after_job_id,
        "after_on": job.after_on,
        "shared": bool(job.shared),
        "owner_id": job.owner_id,
        "run_count": job.run_count or 0,
        "created_at": timestamp(job.created_at),
        "updated_at": timestamp(job.updated_at),
        "last_run_at": timestamp(job.last_run_at),
    }


def _url_json(url: PullUrl | Trigger) -> dict[str, Any]:
    """What a pull or trigger URL shows after its creation: never its token."""
    return {
        "id": url.id,
        "job_id": url.job_id,
        "name": url.name,
        "prefix": url.prefix,
        "active": url.revoked_at is None,
        "created_at": timestamp(url.created_at),
        "last_used_at": timestamp(url.last_used_at),
        "revoked_at": timestamp(url.revoked_at),
    }


def pull_url_json(url: PullUrl) -> dict[str, Any]:
    return _url_json(url)


def trigger_json(trigger: Trigger) -> dict[str, Any]:
    return {**_url_json(trigger), "signed": trigger.secret_encrypted is not None}


def tracker_json(tracker: Tracker, patterns: Sequence[ValuePattern]) -> dict[str, Any]:
    """A run; its errors masked with ``patterns`` (``shown_error``)."""
    return run_json(tracker, tracker.current_status, tracker.notifications, patterns)


def run_rows_json(rows: RunRows, patterns: Sequence[ValuePattern]) -> list[dict[str, Any]]:
    """A page of runs read as rows (``trackers.run_rows_for_job``), as ``tracker_json``
    answers each of them."""
    now = utcnow()
    return [
        run_json(
            run,
            current_status(run.status, run.result_expires_at, now),
            rows.notifications.get(run.id, ()),
            patterns,
        )
        for run in rows.runs
    ]


def run_json(
    run: Tracker | RunRow,
    status: str,
    notifications: Iterable[Notification | NotificationRow],
    patterns: Sequence[ValuePattern],
) -> dict[str, Any]:
    """The one shape of a run, from a tracker or from a row of its columns."""
    return {
        "id": run.id,
        "job_id": run.job_id,
        "schedule_id": run.schedule_id,
        "upstream_run_id": run.upstream_tracker_id,
        "trigger_id": run.trigger_id,
        "due_at": timestamp(run.due_at),
        "status": status,
        "queued_at": timestamp(run.queued_at),
        "started_at": timestamp(run.started_at),
        "finished_at": timestamp(run.finished_at),
        "duration_ms": run.duration_ms,
        "row_count": run.row_count,
        "parameters": parameters.load_values(run.parameter_values_json),
        "error": shown_error(run.error, patterns) if run.error is not None else None,
        "attempts": run.attempts or 0,
        "note": shown_error(run.note, patterns) if run.note is not None else None,
        "result_expires_at": timestamp(run.result_expires_at),
        "notifications": [
            {
                "id": notification.id,
                "notifier": notification.notifier,
                "recipient": notification.recipient,
                "status": notification.status,
                "attempts": notification.attempts or 0,
                "last_error": shown_error(notification.last_error, patterns),
                "sent_at": timestamp(notification.sent_at),
                "note": shown_error(notification.note, patterns),
            }
            for notification in notifications
        ],
    }


def jsonable(value: Any) -> Any:
    """A preview value as JSON, as the JSON download writes it: numbers as numbers
    (decimals exact, ``jsontext``; NaN and infinities ``null``), dates ISO 8601, bytes as
    PostgreSQL's hex text, the rest as text."""
    if value is None or isinstance(value, bool | int | str | decimal.Decimal):
        return value
    if isinstance(value, float):
        return jsontext.finite(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return str(value)


def preview_json(preview: Preview) -> dict[str, Any]:
    return {
        "header": preview.header,
        "rows": [[jsonable(value) for value in row] for row in preview.rows],
        "scrubbed": preview.removed,
        "masked": preview.masked,
        "untraced": preview.untraced,
        "note": preview.untraced_note,
        "truncated": preview.truncated,
        "elapsed_ms": preview.elapsed_ms,
    }

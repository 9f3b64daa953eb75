"""Models as the JSON the API answers with; the one place their public shape is decided.

Passwords never leave: a connection says only whether it ``has_password``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Sequence
from typing import Any

from dancecat_core import parameters
from dancecat_core.error_text import shown_error
from dancecat_core.models import Connection, Job, PullUrl, Tracker, Trigger, User
from dancecat_core.runner import Preview
from dancecat_core.scrubbing import ValuePattern
from dancecat_core.services.jobs import recipient_text


def timestamp(value: dt.datetime | None) -> str | None:
    """An aware datetime as ISO 8601 in UTC (``2024-05-01T12:00:00+00:00``)."""
    return value.astimezone(dt.UTC).isoformat() if value is not None else None


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
    return {
        "id": tracker.id,
        "job_id": tracker.job_id,
        "schedule_id": tracker.schedule_id,
        "upstream_run_id": tracker.upstream_tracker_id,
        "trigger_id": tracker.trigger_id,
        "due_at": timestamp(tracker.due_at),
        "status": tracker.current_status,
        "queued_at": timestamp(tracker.queued_at),
        "started_at": timestamp(tracker.started_at),
        "finished_at": timestamp(tracker.finished_at),
        "duration_ms": tracker.duration_ms,
        "row_count": tracker.row_count,
        "parameters": parameters.load_values(tracker.parameter_values_json),
        "error": shown_error(tracker.error, patterns),
        "result_expires_at": timestamp(tracker.result_expires_at),
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
            for notification in tracker.notifications
        ],
    }


def jsonable(value: Any) -> Any:
    """A preview value as JSON: numbers and text as they are, the rest as exact text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f") if value.is_finite() else str(value)
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

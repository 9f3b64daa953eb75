"""The New / Edit job form: its state, its buttons, and saving it through the services.

The form is a plain HTML form that works without script: "New schedule", "remove" and the
recipient buttons are submit buttons that re-render the form with a block added or
removed; the page's script does the same in place. Saving calls the jobs service, then
the schedules service for each block; the first refusal dooms the transaction so nothing
of a refused form is stored.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
from pyramid.request import Request
from webob.multidict import MultiDict

from dancecat_core.errors import ValidationError
from dancecat_core.models import Job, Schedule
from dancecat_core.services import jobs, schedules
from dancecat_core.services.jobs import JobInput
from dancecat_core.services.schedules import ScheduleInput
from dancecat_web.ui.forms import FormErrors, checkbox, text

SCHEDULE_KEY = re.compile(r"^schedule-(\d+)-type$")
START_INPUT_FORMAT = "%Y-%m-%dT%H:%M"
JOB_FIELD_ALIASES = {"connection": "connection_id"}


def _blank_schedule(timezone: str) -> dict[str, Any]:
    return {
        "id": "",
        "type": "daily",
        "start": "",
        "timezone": timezone,
        "cron": "",
        "active": True,
    }


@attrs.define
class JobForm:
    """Everything the form shows: the job's fields, its schedule blocks, its recipients."""

    values: dict[str, Any]
    schedules: list[dict[str, Any]]
    recipients: list[str]

    @classmethod
    def blank(cls, connection_id: int | None) -> JobForm:
        values = {
            "name": "",
            "annotation": "",
            "connection_id": connection_id or "",
            "query": "",
            "timeout_seconds": "",
        }
        return cls(values, [], [])

    @classmethod
    def from_job(cls, job: Job, job_schedules: list[Schedule]) -> JobForm:
        values = {
            "name": job.name,
            "annotation": job.annotation or "",
            "connection_id": job.connection_id,
            "query": job.query,
            "timeout_seconds": job.timeout_seconds or "",
        }
        blocks = [
            {
                "id": schedule.id,
                "type": schedule.type,
                "start": schedule.start_local.strftime(START_INPUT_FORMAT),
                "timezone": schedule.timezone,
                "cron": schedule.cron or "",
                "active": bool(schedule.active),
            }
            for schedule in job_schedules
        ]
        return cls(values, blocks, [recipient.email for recipient in job.recipients])

    @classmethod
    def from_post(cls, post: MultiDict) -> JobForm:
        values = {
            name: text(post, name)
            for name in ("name", "annotation", "connection_id", "query", "timeout_seconds")
        }
        indexes = sorted(int(match.group(1)) for key in post if (match := SCHEDULE_KEY.match(key)))
        blocks = [
            {
                "id": text(post, f"schedule-{i}-id"),
                "type": text(post, f"schedule-{i}-type"),
                "start": text(post, f"schedule-{i}-start"),
                "timezone": text(post, f"schedule-{i}-timezone"),
                "cron": text(post, f"schedule-{i}-cron"),
                "active": checkbox(post, f"schedule-{i}-active"),
            }
            for i in indexes
        ]
        recipients = [
            value.strip() for value in post.getall("recipients") if isinstance(value, str)
        ]
        return cls(values, blocks, [address for address in recipients if address])

    def apply_button(self, action: str, timezone: str) -> bool:
        """Do what an add/remove button asks; False when ``action`` is not one of them."""
        if action == "add-schedule":
            self.schedules.append(_blank_schedule(timezone))
        elif action == "add-recipient":
            self.recipients.append("")
        elif match := re.fullmatch(r"remove-(schedule|recipient)-(\d+)", action):
            items = self.schedules if match.group(1) == "schedule" else self.recipients
            index = int(match.group(2))
            if index < len(items):
                del items[index]
        else:
            return False
        return True

    def job_input(self) -> JobInput:
        return JobInput(
            name=self.values["name"],
            connection_id=self.values["connection_id"] or None,
            query=self.values["query"],
            annotation=self.values["annotation"],
            timeout_seconds=self.values["timeout_seconds"] or None,
            recipients=list(self.recipients),
        )


class FormRefused(Exception):
    """The form's errors, to re-render it with."""

    def __init__(self, errors: FormErrors):
        super().__init__("form refused")
        self.errors = errors


def _schedule_input(block: dict[str, Any]) -> ScheduleInput:
    return ScheduleInput(
        type=block["type"],
        start=block["start"],
        timezone=block["timezone"] or None,
        cron=block["cron"] if block["type"] == "cron" else None,
        active=block["active"],
    )


def _save_schedules(request: Request, job: Job, form: JobForm, errors: FormErrors) -> None:
    """Make the job's schedules what the form lists (the service changes, adds, deletes)."""
    items = [
        (int(block["id"]) if str(block["id"]).isdigit() else None, _schedule_input(block))
        for block in form.schedules
    ]
    try:
        schedules.replace_for_job(
            request.dbsession,
            request.user,
            job.id,
            items,
            default_timezone=request.dancecat_settings.timezone or "UTC",
        )
    except ValidationError as error:
        match = re.fullmatch(r"schedules\[(\d+)\](?:\.(\w+))?", error.field or "")
        index, field = (match.group(1), match.group(2) or "type") if match else ("0", "type")
        message = str(error).split(": ", 1)[-1]
        errors.fields[f"schedule-{index}-{field}"] = message


def save(request: Request, form: JobForm, job_id: int | None) -> Job:
    """Create or update the job and its schedules; ``FormRefused`` if any part is refused."""
    errors = FormErrors()
    try:
        if job_id is None:
            job = jobs.create(request.dbsession, request.user, form.job_input())
        else:
            job = jobs.update(request.dbsession, request.user, job_id, form.job_input())
    except ValidationError as error:
        errors.add(error, JOB_FIELD_ALIASES)
        raise FormRefused(errors) from None
    _save_schedules(request, job, form, errors)
    if errors:
        raise FormRefused(errors)
    return job

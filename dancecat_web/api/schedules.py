"""A job's ``schedules`` in the API: the body's shape, the JSON, and replacing the list.

A job body's ``schedules`` is the whole list: an item with the ``id`` of one of the job's
schedules changes it, an item without ``id`` adds one, and schedules left out are deleted.
Every rule about a schedule (types, DST, withdrawing claimed runs, replacing the list) is
the schedules service's; this module only shapes the JSON.
"""

from __future__ import annotations

from typing import Any

from pyramid.request import Request

from dancecat_core import parameters
from dancecat_core.inputs.schedule import ScheduleInput
from dancecat_core.models import Job, Schedule
from dancecat_core.services import schedules
from dancecat_web.api.bodies import Field, input_fields, required_fields
from dancecat_web.api.present import timestamp

SCHEDULE_FIELDS = {"id": Field("integer", nullable=True), **input_fields(ScheduleInput)}
SCHEDULE_REQUIRED = required_fields(ScheduleInput)
START_FORMAT = "%Y-%m-%d %H:%M"


def schedule_json(schedule: Schedule) -> dict[str, Any]:
    return {
        "id": schedule.id,
        "type": schedule.type,
        "start": schedule.start_local.strftime(START_FORMAT),
        "timezone": schedule.timezone,
        "cron": schedule.cron,
        "active": bool(schedule.active),
        "catch_up": schedule.catch_up,
        "parameters": parameters.load_values(schedule.parameter_values_json),
        "next_run_at": timestamp(schedule.next_run_at),
        "last_run_at": timestamp(schedule.last_run_at),
    }


def schedules_json(request: Request, job: Job) -> list[dict[str, Any]]:
    return [
        schedule_json(schedule)
        for schedule in schedules.list_for_job(request.dbsession, request.user, job.id)
    ]


def replace_schedules(request: Request, job: Job, items: list[dict[str, Any]]) -> None:
    """Make the job's schedules be ``items`` (see the module docstring)."""
    schedules.replace_for_job(
        request.dbsession,
        request.user,
        job.id,
        [(item.get("id"), ScheduleInput.from_values(item)) for item in items],
        default_timezone=request.dancecat_settings.timezone,
    )

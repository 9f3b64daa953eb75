"""The New / Edit job form: its state, its buttons, and saving it through the services.

The form is a plain HTML form that works without script: "New schedule", "remove" and the
recipient buttons are submit buttons that re-render the form with a block added or
removed; the page's script does the same in place. The job's inputs and each schedule
block's are drawn from ``JobInput`` and ``ScheduleInput`` (``ui.forms``), so the form
carries every field the API does. Saving calls the jobs service, then the schedules
service for the blocks; every refusal of both is shown at once, and the transaction is
doomed so nothing of a refused form is stored.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
from pyramid.request import Request
from webob.multidict import MultiDict

from dancecat_core import schedule_kinds
from dancecat_core.errors import ValidationError
from dancecat_core.inputs.job import JobInput
from dancecat_core.inputs.schedule import ScheduleInput
from dancecat_core.models import Job, Schedule, ScheduleType
from dancecat_core.services import jobs, schedules
from dancecat_web.ui.forms import FormErrors, form_values, posted, text

# Posted by the form's schedules section: a post without it (and without any schedule
# block) leaves the job's schedules alone.
SCHEDULES_SHOWN = "schedules-shown"
SCHEDULE_KEY = re.compile(r"^schedule-(\d+)-type$")
SCHEDULE_FIELD = re.compile(r"schedules\[(\d+)\](?:\.(\w+))?")


def schedule_prefix(index: int | str) -> str:
    """The id and name prefix of one schedule block's inputs."""
    return f"schedule-{index}-"


def blank_schedule(timezone: str) -> dict[str, Any]:
    """A new block: the declared defaults, daily, in the server's time zone."""
    return {
        "id": "",
        **form_values(ScheduleInput),
        "type": ScheduleType.DAILY.value,
        "timezone": timezone,
    }


@attrs.define
class JobForm:
    """Everything the form shows: the job's fields (recipients among them) and its
    schedule blocks. ``given`` names the fields the post carried (all, for a form this
    app drew); the others keep their stored values when saved."""

    values: dict[str, Any]
    schedules: list[dict[str, Any]]
    given: set[str] = attrs.field(factory=set)
    schedules_given: bool = True

    @property
    def recipients(self) -> list[str]:
        return self.values["recipients"]

    @classmethod
    def blank(cls, connection_id: int | None) -> JobForm:
        values = form_values(JobInput)
        values["connection_id"] = connection_id or ""
        return cls(values, [])

    @classmethod
    def from_job(cls, job: Job, job_schedules: list[Schedule]) -> JobForm:
        blocks = [
            {"id": schedule.id, **form_values(ScheduleInput, schedules.stored(schedule))}
            for schedule in job_schedules
        ]
        return cls(form_values(JobInput, jobs.stored(job)), blocks)

    @classmethod
    def from_post(cls, post: MultiDict, base: dict[str, Any] | None = None) -> JobForm:
        """The form as posted, over ``base`` (the stored or default values)."""
        given = posted(JobInput, post)
        values = {**(base or form_values(JobInput)), **given}
        indexes = sorted(int(match.group(1)) for key in post if (match := SCHEDULE_KEY.match(key)))
        blocks = []
        for index in indexes:
            prefix = schedule_prefix(index)
            block = {"id": text(post, f"{prefix}id"), **posted(ScheduleInput, post, prefix)}
            block["given"] = set(block) - {"id"}
            blocks.append({**form_values(ScheduleInput), **block})
        return cls(values, blocks, set(given), SCHEDULES_SHOWN in post or bool(blocks))

    def apply_button(self, action: str, timezone: str) -> bool:
        """Do what an add/remove button asks; False when ``action`` is not one of them."""
        if action == "add-schedule":
            self.schedules.append(blank_schedule(timezone))
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
        return JobInput.from_values({name: self.values[name] for name in self.given})


class FormRefused(Exception):
    """The form's errors, to re-render it with."""

    def __init__(self, errors: FormErrors):
        super().__init__("form refused")
        self.errors = errors


def _schedule_input(block: dict[str, Any]) -> ScheduleInput:
    """A block's posted fields; the cron field only counts for a block whose type reads it
    (it is hidden, not cleared, when the type changes)."""
    given = {name: block[name] for name in block.get("given", ())}
    reads_cron = str(given.get("type", "")).strip().lower() in schedule_kinds.needing("cron")
    if not reads_cron and "cron" in given:
        given["cron"] = None
    return ScheduleInput.from_values(given)


def _schedule_input_id(field: str) -> str:
    match = SCHEDULE_FIELD.fullmatch(field)
    if match is None:
        return field
    return f"{schedule_prefix(match.group(1))}{match.group(2) or 'type'}"


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
        for problem in getattr(error, "problems", [error]):
            # "schedules[0]: Start on: ..." is shown on the block's field as "Start on: ..."
            message = str(problem).split(": ", 1)[-1]
            errors.add(ValidationError(message, problem.field), _schedule_input_id)


def _check_schedules(request: Request, form: JobForm, errors: FormErrors) -> None:
    """The blocks of a job that could not be created: refusals only, nothing saved."""
    for index, block in enumerate(form.schedules):
        try:
            schedules.check(
                _schedule_input(block),
                default_timezone=request.dancecat_settings.timezone or "UTC",
            )
        except ValidationError as error:
            for problem in getattr(error, "problems", [error]):
                errors.add(problem, lambda field, i=index: f"{schedule_prefix(i)}{field}")


def save(request: Request, form: JobForm, job_id: int | None) -> Job:
    """Create or update the job and its schedules; ``FormRefused`` with every refusal."""
    errors = FormErrors()
    job = None
    try:
        if job_id is None:
            job = jobs.create(request.runtime, request.dbsession, request.user, form.job_input())
        else:
            job = jobs.update(
                request.runtime, request.dbsession, request.user, job_id, form.job_input()
            )
    except ValidationError as error:
        errors.add(error)
    if job is None and job_id is not None:
        job = jobs.get(request.dbsession, request.user, job_id)
    if job is not None:
        if form.schedules_given:
            _save_schedules(request, job, form, errors)
    else:
        _check_schedules(request, form, errors)
    if errors:
        raise FormRefused(errors)
    assert job is not None
    return job

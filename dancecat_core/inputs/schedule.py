"""A schedule as submitted: when a job runs by itself, in which time zone."""

from __future__ import annotations

from typing import Any

import attrs

from dancecat_core import schedule_kinds
from dancecat_core import schedules as math
from dancecat_core.inputs.fields import Input, Kind, LoadedChoices, spec
from dancecat_core.models import CatchUp

START_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}(:[0-9]{2})?$"
CATCH_UP_LABELS = {
    CatchUp.ONCE: "Run once for the missed occurrences",
    CatchUp.SKIP: "Skip the missed occurrences",
}


def _zone_name(name: str) -> str:
    math.zone(name, "timezone")
    return name


@attrs.frozen
class ScheduleInput(Input):
    """A schedule. ``start`` is 'YYYY-MM-DD HH:MM' in ``timezone`` (unset or empty: the
    server's ``TIMEZONE``)."""

    type: Any = spec(
        "Schedule type",
        Kind.CHOICE,
        required=True,
        widget="select",
        flag="--type",
        choices=LoadedChoices(schedule_kinds.choices),
        help="One of the installed schedule types.",
    )
    start: Any = spec(
        "Start on",
        Kind.DATETIME,
        required=True,
        check=math.parse_start,
        widget="datetime",
        pattern=START_PATTERN,
        flag="--start",
        help="Wall-clock start, YYYY-MM-DD HH:MM, in the schedule's time zone.",
    )
    timezone: Any = spec(
        "Time zone",
        Kind.TEXT,
        nullable=True,
        max_length=64,
        check=_zone_name,
        widget="timezone",
        flag="--timezone",
        help="An IANA name such as Europe/Paris.",
    )
    cron: Any = spec(
        "Cron expression",
        Kind.TEXT,
        nullable=True,
        max_length=200,
        widget="cron",
        flag="--cron",
        placeholder="30 9 * * 1-5",
        help="minute hour day-of-month month day-of-week, in the schedule's time zone",
    )
    active: Any = spec(
        "Active",
        Kind.BOOLEAN,
        default=True,
        widget="checkbox",
        flag="--active",
        off_flag="--inactive",
        help="An inactive schedule is kept but does not run.",
    )
    parameters: Any = spec(
        "Parameter values",
        Kind.VALUES,
        default={},
        widget="values",
        flag="--param",
        placeholder="region=EU",
        help="Each NAME=VALUE (on the form, one per line): fixed for this schedule's runs.",
    )
    catch_up: Any = spec(
        "After downtime",
        Kind.CHOICE,
        default=CatchUp.ONCE.value,
        widget="select",
        flag="--catch-up",
        choices=tuple((c.value, CATCH_UP_LABELS[c]) for c in CatchUp),
    )

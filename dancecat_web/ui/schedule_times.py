"""The next run times a schedule form shows while it is being edited.

Pure translation around the registered schedule type (the same rules the scheduler uses),
so what the form promises is what will happen.
"""

from __future__ import annotations

import datetime as dt

import attrs

from dancecat_core import schedule_kinds
from dancecat_core import schedules as math
from dancecat_core.errors import ValidationError
from dancecat_core.inputs.fields import relabel
from dancecat_core.inputs.schedule import ScheduleInput
from dancecat_core.models import utcnow

HOW_MANY = 3
START = ScheduleInput.field("start")


@attrs.frozen
class RunTime:
    local: str
    utc: str


@attrs.frozen
class NextRuns:
    runs: list[RunTime]
    error: str | None = None


def next_runs(
    kind: str,
    start: str,
    timezone: str,
    cron: str | None = None,
    *,
    count: int = HOW_MANY,
    now: dt.datetime | None = None,
) -> NextRuns:
    """Up to ``count`` occurrences after ``now``, or why none are shown (by label)."""
    if not str(start or "").strip():
        return NextRuns([], f"No next runs shown: fill in {START.label}.")
    try:
        start_local = math.parse_start(start)
        math.zone(timezone)
        rules = schedule_kinds.get(kind)
        cron = rules.check({"cron": cron}).get("cron") if "cron" in rules.fields else None
        rule = schedule_kinds.Rule(start_local, timezone, cron)
        instant = (now or utcnow()) - dt.timedelta(microseconds=1)
        runs: list[RunTime] = []
        while len(runs) < count:
            found = rules.next_after(rule, instant)
            if found is None:
                break
            runs.append(RunTime(math.local_text(found, timezone), math.local_text(found, "UTC")))
            instant = found
    except ValidationError as error:
        names = {field.name: field for field in ScheduleInput.fields()}
        if error.field in names:
            error = relabel(error, names[error.field])
        return NextRuns([], f"No next runs shown: {error}")
    except ValueError as error:
        return NextRuns([], f"No next runs shown: {error}")
    if not runs:
        return NextRuns([], "No next runs shown: this schedule has no run in the future.")
    return NextRuns(runs)

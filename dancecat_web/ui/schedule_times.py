"""The next run times a schedule form shows while it is being edited.

Pure translation around ``dancecat_core.schedules`` (the same math the scheduler uses), so
what the form promises is what will happen.
"""

from __future__ import annotations

import datetime as dt

import attrs

from dancecat_core import schedules as math
from dancecat_core.errors import ValidationError
from dancecat_core.models import utcnow

HOW_MANY = 3


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
    """Up to ``count`` occurrences after ``now``, or why the values cannot be scheduled."""
    try:
        start_local = math.parse_start(start)
        math.zone(timezone)
        if kind == "cron":
            cron = math.check_cron(cron)
        instant = (now or utcnow()) - dt.timedelta(microseconds=1)
        runs: list[RunTime] = []
        while len(runs) < count:
            found = math.next_after(kind, start_local, timezone, instant, cron)
            if found is None:
                break
            runs.append(RunTime(math.local_text(found, timezone), math.local_text(found, "UTC")))
            instant = found
    except (ValidationError, ValueError) as error:
        return NextRuns([], str(error))
    if not runs:
        return NextRuns([], "this schedule has no run in the future")
    return NextRuns(runs)

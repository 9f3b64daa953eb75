"""The built-in date parameters of a run, from the occurrence it stands for.

A scheduled report asks for "yesterday" or "last month" in its schedule's time zone, and a
run caught up after downtime must still cover the period it stands for, not the day it
happened to run on. So every built-in is computed from the run's ``Occasion``: its due time
(the occurrence, or now for a manual run), the schedule's zone (for a manual run, the
server's ``TIMEZONE``) and the schedule's previous occurrence, which ``schedules``
computes by the schedule type's own rules.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from dancecat_core import schedule_kinds, schedules

# Each built-in and its type (``parameters.TYPES``): instants are ``datetime``, aware.
BUILTIN_TYPES = {
    "due_at": "datetime",
    "due_date": "date",
    "yesterday": "date",
    "week_start": "date",
    "last_week_start": "date",
    "month_start": "date",
    "last_month_start": "date",
    "last_month_end": "date",
    "year_start": "date",
    "period_start": "datetime",
    "period_end": "datetime",
}


@attrs.frozen
class Occasion:
    """What a run stands for: ``due_at`` (aware), the zone its dates are read in, and, for
    a scheduled run, its schedule's type and rule (``schedule``), by which the period
    before it began is found.

    That previous occurrence is computed only when a built-in is read: most jobs use none,
    and computing it for every run was ~5% of a trivial run's CPU in the consumer.
    """

    due_at: dt.datetime
    timezone: str
    schedule: tuple[str, schedule_kinds.Rule] | None = None

    def period_start(self) -> dt.datetime | None:
        """The schedule's occurrence before ``due_at`` (``None``: a manual run, or none)."""
        if self.schedule is None:
            return None
        kind, rule = self.schedule
        return schedule_kinds.get(kind).previous_before(rule, self.due_at)


def occasion_of(
    due_at: dt.datetime,
    timezone: str,
    schedule: Any = None,
) -> Occasion:
    """The occasion of a run due at ``due_at``: for a scheduled one (``schedule`` has
    ``type``, ``start_local``, ``timezone``, ``cron``) in the schedule's zone, with its
    previous occurrence; for a manual one in ``timezone``."""
    if schedule is None:
        return Occasion(due_at, timezone)
    rule = schedule_kinds.Rule(schedule.start_local, schedule.timezone, schedule.cron)
    return Occasion(due_at, schedule.timezone, (schedule.type, rule))


def _fixed(instant: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """``instant`` in ``tz``'s offset of that moment, as a fixed offset: a value that says
    which of a repeated hour's two passes it is, whoever reads or compares it."""
    local = instant.astimezone(tz)
    return local.replace(tzinfo=dt.timezone(local.utcoffset() or dt.timedelta(0)))


def builtin_values(occasion: Occasion) -> dict[str, Any]:
    """Every built-in's value for ``occasion``."""
    tz = schedules.zone(occasion.timezone)
    due = _fixed(occasion.due_at, tz)
    day = due.date()
    week_start = day - dt.timedelta(days=day.weekday())  # Monday, as ISO 8601 counts
    month_start = day.replace(day=1)
    last_month_end = month_start - dt.timedelta(days=1)
    previous = occasion.period_start()
    if previous is None:  # the same wall time a day before, placed by the DST rules
        previous = schedules.to_utc(due.replace(tzinfo=None) - dt.timedelta(days=1), tz)
    return {
        "due_at": due,
        "due_date": day,
        "yesterday": day - dt.timedelta(days=1),
        "week_start": week_start,
        "last_week_start": week_start - dt.timedelta(days=7),
        "month_start": month_start,
        "last_month_start": last_month_end.replace(day=1),
        "last_month_end": last_month_end,
        "year_start": day.replace(month=1, day=1),
        "period_start": _fixed(previous, tz),
        "period_end": due,
    }

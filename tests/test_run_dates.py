"""Built-in dates over a month of time travel, across DST changes in two zones.

October 2026: Australia/Sydney springs forward on the 4th (02:00 -> 03:00, so 02:30 does
not exist), Europe/Berlin falls back on the 25th (03:00 -> 02:00, so 02:30 happens twice).
Every occurrence of every schedule type in both zones, and a manual run every hour, is
checked against values computed independently with python-dateutil.
"""

from __future__ import annotations

import datetime as dt

import pytest
from dateutil import tz
from dateutil.relativedelta import MO, relativedelta

from dancecat_core import schedules
from dancecat_core.run_dates import BUILTIN_TYPES, Occasion, builtin_values, occasion_of

UTC = dt.UTC
MONTH_START = dt.datetime(2026, 9, 30, tzinfo=UTC)
MONTH_END = dt.datetime(2026, 11, 2, tzinfo=UTC)
ZONES = ("Europe/Berlin", "Australia/Sydney")


class Sched:
    def __init__(self, type: str, start: str, timezone: str, cron: str | None = None):
        self.type = type
        self.start_local = dt.datetime.fromisoformat(start)
        self.timezone = timezone
        self.cron = cron


def resolve(wall: dt.datetime, zone_name: str) -> dt.datetime:
    """The instant a wall time names, by dateutil: in a gap, the first minute after it;
    twice over, the first time."""
    zone = tz.gettz(zone_name)
    local = tz.enfold(wall.replace(tzinfo=zone), fold=0)
    while not tz.datetime_exists(local):
        wall += dt.timedelta(minutes=1)
        local = tz.enfold(wall.replace(tzinfo=zone), fold=0)
    return local.astimezone(UTC)


def expected_dates(due: dt.datetime, zone_name: str) -> dict:
    day = due.astimezone(tz.gettz(zone_name)).date()
    return {
        "due_date": day,
        "yesterday": day + relativedelta(days=-1),
        "week_start": day + relativedelta(weekday=MO(-1)),
        "last_week_start": day + relativedelta(weekday=MO(-1), weeks=-1),
        "month_start": day + relativedelta(day=1),
        "last_month_start": day + relativedelta(months=-1, day=1),
        "last_month_end": day + relativedelta(day=1, days=-1),
        "year_start": day + relativedelta(month=1, day=1),
    }


def wall_of(due: dt.datetime, zone_name: str) -> dt.datetime:
    return due.astimezone(tz.gettz(zone_name)).replace(tzinfo=None)


def expected_previous(kind: str, sched: Sched, due: dt.datetime) -> dt.datetime:
    """The occurrence before ``due``, from the schedule's rule, computed with dateutil."""
    clock = dt.time(2, 30) if kind == "cron" else sched.start_local.time()
    day = wall_of(due, sched.timezone).date()
    if kind == "hourly":
        return due - dt.timedelta(hours=1)
    if kind in ("daily", "cron"):
        return resolve(dt.datetime.combine(day - dt.timedelta(days=1), clock), sched.timezone)
    if kind == "weekly":
        return resolve(dt.datetime.combine(day - dt.timedelta(days=7), clock), sched.timezone)
    previous = day + relativedelta(months=-1, day=sched.start_local.day)
    return resolve(dt.datetime.combine(previous, clock), sched.timezone)


SCHEDULES = [
    ("hourly", "2026-09-01 00:30", None),
    ("daily", "2026-09-01 02:30", None),
    ("weekly", "2026-09-07 02:30", None),  # Mondays
    ("monthly", "2026-01-31 02:30", None),  # the 31st, or the month's last day
    ("cron", "2026-09-01 00:00", "30 2 * * *"),
]


@pytest.mark.parametrize("zone_name", ZONES)
@pytest.mark.parametrize(("kind", "start", "cron"), SCHEDULES)
def test_every_builtin_for_every_occurrence_of_a_dst_month(zone_name, kind, start, cron):
    sched = Sched(kind, start, zone_name, cron)
    dues = list(
        schedules.occurrences(kind, sched.start_local, zone_name, MONTH_START, MONTH_END, cron)
    )
    assert len(dues) >= (1 if kind == "monthly" else 4)
    for due in dues:
        values = builtin_values(occasion_of(due, "UTC", sched))
        assert set(values) == set(BUILTIN_TYPES)
        expected = expected_dates(due, zone_name)
        assert {k: values[k] for k in expected} == expected, (kind, due)
        assert values["due_at"] == due and values["period_end"] == due
        assert values["due_at"].utcoffset() == due.astimezone(tz.gettz(zone_name)).utcoffset()
        assert values["period_start"] == expected_previous(kind, sched, due), (kind, due)


def test_the_dst_days_themselves() -> None:
    """The two nights by hand: a daily 02:30 run on each DST day and the day after."""
    sydney = Sched("daily", "2026-09-01 02:30", "Australia/Sydney")
    gap_day = schedules.next_after("daily", sydney.start_local, sydney.timezone,
                                   dt.datetime(2026, 10, 3, 12, tzinfo=UTC))  # fmt: skip
    values = builtin_values(occasion_of(gap_day, "UTC", sydney))
    assert values["due_at"].isoformat() == "2026-10-04T03:00:00+11:00"  # first minute after
    assert values["period_start"].isoformat() == "2026-10-03T02:30:00+10:00"
    assert values["due_date"] == dt.date(2026, 10, 4)
    berlin = Sched("daily", "2026-09-01 02:30", "Europe/Berlin")
    twice = schedules.next_after("daily", berlin.start_local, berlin.timezone,
                                 dt.datetime(2026, 10, 24, 12, tzinfo=UTC))  # fmt: skip
    values = builtin_values(occasion_of(twice, "UTC", berlin))
    assert values["due_at"].isoformat() == "2026-10-25T02:30:00+02:00"  # its first time
    assert values["period_start"].isoformat() == "2026-10-24T02:30:00+02:00"
    after = schedules.next_after("daily", berlin.start_local, berlin.timezone, twice)
    assert builtin_values(occasion_of(after, "UTC", berlin))["period_start"] == twice
    assert after - twice == dt.timedelta(hours=25)


def test_a_first_run_has_a_period_and_once_falls_back_to_a_day() -> None:
    first = Sched("daily", "2026-12-03 07:00", "Europe/Berlin")
    due = schedules.next_after("daily", first.start_local, first.timezone, MONTH_START)
    values = builtin_values(occasion_of(due, "UTC", first))
    assert values["period_start"].isoformat() == "2026-12-02T07:00:00+01:00"
    once = Sched("once", "2026-10-25 12:00", "Europe/Berlin")
    due = schedules.next_after("once", once.start_local, once.timezone, MONTH_START)
    values = builtin_values(occasion_of(due, "UTC", once))
    assert values["period_start"].isoformat() == "2026-10-24T12:00:00+02:00"  # 25 h before


@pytest.mark.parametrize("zone_name", ZONES)
def test_a_manual_run_every_hour_of_the_month(zone_name: str) -> None:
    """Now, in the server's zone: the dates of its local day; the period the day before."""
    instant = MONTH_START
    while instant < MONTH_END:
        values = builtin_values(Occasion(instant, zone_name))
        expected = expected_dates(instant, zone_name)
        assert {k: values[k] for k in expected} == expected, instant
        wall = wall_of(instant, zone_name)
        assert values["period_start"] == resolve(wall - dt.timedelta(days=1), zone_name)
        assert values["period_end"] == instant
        instant += dt.timedelta(minutes=37)


def test_the_previous_occurrence_is_computed_only_when_a_builtin_is_read(monkeypatch) -> None:
    """A scheduled run's claim does not compute its schedule's previous occurrence (5% of
    a trivial run's CPU): binding a query without built-ins never asks for it, one with
    them asks once."""
    from dancecat_core import parameters

    asked = []
    real = schedules.previous_before
    monkeypatch.setattr(
        schedules, "previous_before", lambda *a, **k: asked.append(a) or real(*a, **k)
    )
    sched = Sched("daily", "2026-09-01 02:30", "Europe/Berlin")
    due = schedules.next_after("daily", sched.start_local, sched.timezone, MONTH_START)
    occasion = occasion_of(due, "UTC", sched)
    assert parameters.bind("SELECT 1", [], {}, occasion, "sqlite")[1] == {}
    assert asked == []
    _, used = parameters.bind("SELECT {{ period_start }}", [], {}, occasion, "sqlite")
    assert len(asked) == 1
    assert used["period_start"] == due - dt.timedelta(days=1)

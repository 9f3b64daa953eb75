"""Cron schedules keep the project's DST rules, checked against an oracle over a year.

The rules (docs/SCHEDULING.md): a schedule runs at each wall-clock minute its five fields
match; a repeated (fall-back) time runs once, at its first occurrence; a time that does
not exist (a spring-forward gap) runs at the first minute after the gap, and several such
times collapse into that one run.

The oracle below shares nothing with the product: it parses the five fields itself, and it
learns a zone only from the UTC offset ``zoneinfo`` gives each instant (never a wall time's
fold or gap). It states all three rules at once: a matching wall time runs at the earliest
instant whose wall clock shows that time or later. It enumerates every wall minute of 2026
that the fields match, in zones with 1-hour changes at night (Berlin, New York), 30-minute
changes (Lord Howe), changes at midnight (Santiago, Havana) and none (Kolkata, UTC), and the
product's successive next runs over the year must be exactly its answer.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import zoneinfo
from collections.abc import Iterator

import pytest

from dancecat_core.schedules import next_after, occurrences

UTC = dt.UTC
MINUTE = dt.timedelta(minutes=1)
YEAR_START = dt.datetime(2026, 1, 1)  # naive UTC, like every instant in the oracle
YEAR_END = dt.datetime(2027, 1, 1)
SCHEDULE_START = dt.datetime(2025, 1, 1)  # wall clock, well before the year
MONTH_NAMES = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Santiago",
    "America/Havana",
    "Asia/Kolkata",
    "UTC",
]
EXPRESSIONS = [
    "*/20 1-3 * * *",
    "0 */5 * * *",
    "30 2 * * *",
    "0 0 * * *",
    "15,45 * * * *",
    "0 2 * * 0",
    "0 3 1 * *",
    # Every 7 minutes on weekdays, in the night hours where every zone above changes
    # (all day would add 40,000 runs per zone and no DST case).
    "*/7 0-3,22-23 * * 1-5",
    "10 0,23 13 * fri",  # day-of-month and day-of-week both given: either matches
    "0 12 */10 * mon",  # a day field starting with '*': both must match
    "0-59/30 0-2 * mar-apr,sep-nov sun",
]


# --- The oracle's own reading of the five fields -------------------------------------


def field_values(text: str, low: int, high: int, names: list[str], first: int) -> set[int]:
    """The numbers one field names: ``*``, ``a``, ``a-b``, any of them ``/step``, lists,
    and names (``names[0]`` is ``first``)."""

    def number(token: str) -> int:
        return names.index(token) + first if token in names else int(token)

    values: set[int] = set()
    for part in text.lower().split(","):
        base, _, step = part.partition("/")
        if base == "*":
            begin, end = low, high
        elif "-" in base:
            begin, end = (number(token) for token in base.split("-"))
        else:
            begin = number(base)
            end = high if step else begin
        values.update(range(begin, end + 1, int(step or 1)))
    return values


class Oracle:
    """Which wall-clock minutes an expression matches."""

    def __init__(self, expression: str) -> None:
        minute, hour, dom, month, dow = expression.split()
        self.minutes = sorted(field_values(minute, 0, 59, [], 0))
        self.hours = sorted(field_values(hour, 0, 23, [], 0))
        self.doms = field_values(dom, 1, 31, [], 1)
        self.months = field_values(month, 1, 12, MONTH_NAMES, 1)
        self.dows = {day % 7 for day in field_values(dow, 0, 7, DAY_NAMES, 0)}
        # Vixie/Debian cron: a day field starting with '*' leaves the other one in charge;
        # when both are restricted, a day matching either runs.
        self.either_day = not (dom.startswith("*") or dow.startswith("*"))

    def day_matches(self, day: dt.date) -> bool:
        by_dom = day.day in self.doms
        by_dow = day.isoweekday() % 7 in self.dows
        return (by_dom or by_dow) if self.either_day else (by_dom and by_dow)

    def walls(self, first: dt.date, last: dt.date) -> Iterator[dt.datetime]:
        day = first
        while day <= last:
            if day.month in self.months and self.day_matches(day):
                for hour in self.hours:
                    for minute in self.minutes:
                        yield dt.datetime(day.year, day.month, day.day, hour, minute)
            day += dt.timedelta(days=1)


# --- The oracle's own reading of a zone ----------------------------------------------

Segment = tuple[dt.datetime, dt.datetime, dt.timedelta]  # UTC start, UTC end, offset


def offset_at(tz: zoneinfo.ZoneInfo, instant: dt.datetime) -> dt.timedelta:
    return instant.replace(tzinfo=UTC).astimezone(tz).utcoffset()


def segments(tz: zoneinfo.ZoneInfo, start: dt.datetime, end: dt.datetime) -> list[Segment]:
    """Stretches of real time with one UTC offset, found hour by hour, each change pinned
    to its minute by bisection."""
    result: list[Segment] = []
    begin, offset = start, offset_at(tz, start)
    probe = start
    while probe < end:
        following = min(probe + dt.timedelta(hours=1), end)
        if offset_at(tz, following) != offset:
            low, high = probe, following  # offset(low) == offset, offset(high) differs
            while high - low > MINUTE:
                middle = low + (high - low) // 2
                middle -= dt.timedelta(seconds=middle.second, microseconds=middle.microsecond)
                low, high = (middle, high) if offset_at(tz, middle) == offset else (low, middle)
            result.append((begin, high, offset))
            begin, offset = high, offset_at(tz, high)
        probe = following
    result.append((begin, end, offset))
    return result


def run_instant(wall: dt.datetime, zone_segments: list[Segment]) -> dt.datetime:
    """The earliest instant whose wall clock shows ``wall`` or later."""
    for begin, end, offset in zone_segments:
        instant = wall - offset
        if instant < end:
            return max(instant, begin)
    raise AssertionError(f"{wall} is beyond the segments")


def expected_runs(expression: str, zone_name: str) -> list[dt.datetime]:
    margin = dt.timedelta(days=1)  # more than any UTC offset
    zone_segments = segments(
        zoneinfo.ZoneInfo(zone_name), YEAR_START - 3 * margin, YEAR_END + 3 * margin
    )
    walls = Oracle(expression).walls((YEAR_START - margin).date(), (YEAR_END + margin).date())
    instants = {run_instant(wall, zone_segments) for wall in walls}
    return sorted(i for i in instants if YEAR_START < i <= YEAR_END)


def product_runs(expression: str, zone_name: str) -> list[dt.datetime]:
    """The product's successive next runs over the year (``occurrences`` asks
    ``next_after`` for each one, as the scheduler does)."""
    return [
        instant.astimezone(UTC).replace(tzinfo=None)
        for instant in occurrences(
            "cron",
            SCHEDULE_START,
            zone_name,
            YEAR_START.replace(tzinfo=UTC),
            YEAR_END.replace(tzinfo=UTC),
            expression,
        )
    ]


# --- The oracle's zones have the shapes the rules are about --------------------------


def changes(zone_name: str) -> list[tuple[dt.datetime, dt.timedelta]]:
    """Each offset change of 2026: the wall clock just before it, and the jump."""
    parts = segments(zoneinfo.ZoneInfo(zone_name), YEAR_START, YEAR_END)
    return [
        (end + before, after - before)
        for (_, end, before), (_, _, after) in itertools.pairwise(parts)
    ]


@pytest.mark.parametrize(
    ("zone_name", "wanted"),
    [
        ("Europe/Berlin", [("2026-03-29 02:00", 60), ("2026-10-25 03:00", -60)]),
        ("America/New_York", [("2026-03-08 02:00", 60), ("2026-11-01 02:00", -60)]),
        ("Australia/Lord_Howe", [("2026-04-05 02:00", -30), ("2026-10-04 02:00", 30)]),
        ("America/Santiago", [("2026-04-05 00:00", -60), ("2026-09-06 00:00", 60)]),
        ("America/Havana", [("2026-03-08 00:00", 60), ("2026-11-01 01:00", -60)]),
        ("Asia/Kolkata", []),
        ("UTC", []),
    ],
)
def test_the_oracle_sees_each_zones_changes(zone_name, wanted):
    got = [(wall.strftime("%Y-%m-%d %H:%M"), jump // MINUTE) for wall, jump in changes(zone_name)]
    assert got == wanted


def test_the_oracle_reads_the_fields():
    oracle = Oracle("0-59/30 0-2 * mar-apr,sep-nov sun")
    assert (oracle.minutes, oracle.hours, oracle.months) == ([0, 30], [0, 1, 2], {3, 4, 9, 10, 11})
    assert oracle.dows == {0} and not oracle.either_day
    either = Oracle("10 0,23 13 * fri")
    assert either.either_day
    assert either.day_matches(dt.date(2026, 2, 13))  # Friday the 13th
    assert either.day_matches(dt.date(2026, 1, 13))  # a Tuesday, by day of month
    assert either.day_matches(dt.date(2026, 1, 2))  # a Friday, by day of week
    assert not either.day_matches(dt.date(2026, 1, 3))
    both = Oracle("0 12 */10 * mon")
    assert not both.either_day and both.doms == {1, 11, 21, 31}
    assert both.day_matches(dt.date(2026, 6, 1)) and not both.day_matches(dt.date(2026, 6, 8))
    assert Oracle("0 0 * * 7").dows == {0} and Oracle("*/7 0-3,22-23 * * 1-5").minutes[-1] == 56


# --- The product against the oracle ---------------------------------------------------


@pytest.mark.parametrize("zone_name", ZONES)
def test_a_year_of_cron_runs_equals_the_oracle(zone_name):
    for expression in EXPRESSIONS:
        expected = expected_runs(expression, zone_name)
        assert expected, expression
        got = product_runs(expression, zone_name)
        missing = sorted(set(expected) - set(got))[:5]
        extra = sorted(set(got) - set(expected))[:5]
        assert got == expected, f"{expression} in {zone_name}: missing {missing}, extra {extra}"


@pytest.mark.parametrize("zone_name", ["Europe/Berlin", "Australia/Lord_Howe", "America/Havana"])
def test_next_run_from_any_instant_around_each_change(zone_name):
    """``next_after`` from instants that are not runs (inside gaps' neighbourhoods and both
    passes of a repeated hour, with seconds) is the oracle's first run after them."""
    for expression in ["*/20 1-3 * * *", "0 */5 * * *", "15,45 * * * *", "0 0 * * *"]:
        expected = expected_runs(expression, zone_name)
        for wall, _ in changes(zone_name):
            utc_guess = wall - offset_at(zoneinfo.ZoneInfo(zone_name), YEAR_START)
            probe = utc_guess - dt.timedelta(hours=14)
            while probe < utc_guess + dt.timedelta(hours=14):
                want = expected[bisect.bisect_right(expected, probe)]
                got = next_after(
                    "cron", SCHEDULE_START, zone_name, probe.replace(tzinfo=UTC), expression
                )
                assert got.replace(tzinfo=None) == want, (expression, probe)
                probe += dt.timedelta(minutes=7, seconds=13)


# --- The cases issue 11 reported --------------------------------------------------------


def local_runs(expression: str, zone_name: str, after: str, until: str) -> list[str]:
    tz = zoneinfo.ZoneInfo(zone_name)
    return [
        instant.astimezone(tz).strftime("%m-%d %H:%M %z")
        for instant in occurrences(
            "cron",
            SCHEDULE_START,
            zone_name,
            dt.datetime.fromisoformat(after).replace(tzinfo=tz),
            dt.datetime.fromisoformat(until).replace(tzinfo=tz),
            expression,
        )
    ]


def test_berlin_repeated_hour_runs_each_time_once():
    got = local_runs("*/20 1-3 * * *", "Europe/Berlin", "2026-10-25 00:00", "2026-10-25 04:00")
    assert got == [
        "10-25 01:00 +0200",
        "10-25 01:20 +0200",
        "10-25 01:40 +0200",
        "10-25 02:00 +0200",
        "10-25 02:20 +0200",
        "10-25 02:40 +0200",
        # 02:00-02:59 +0100 repeats times already run
        "10-25 03:00 +0100",
        "10-25 03:20 +0100",
        "10-25 03:40 +0100",
    ]


@pytest.mark.parametrize("day", ["2026-04-05", "2026-10-04"])
def test_lord_howe_every_five_hours_keeps_five_oclock_on_change_days(day):
    got = local_runs("0 */5 * * *", "Australia/Lord_Howe", f"{day} 00:00", f"{day} 23:59")
    assert [text.split()[1] for text in got] == ["05:00", "10:00", "15:00", "20:00"]


def test_lord_howe_run_in_the_half_hour_gap_moves_to_its_end():
    # 2026-10-04: 02:00 +1030 becomes 02:30 +1100; 02:00-02:29 do not exist.
    got = local_runs("15 2 * * *", "Australia/Lord_Howe", "2026-10-03 00:00", "2026-10-05 23:59")
    assert got == ["10-03 02:15 +1030", "10-04 02:30 +1100", "10-05 02:15 +1100"]
    # 02:00 and 02:20 fall in the gap and collapse into one run at 02:30; 02:40 exists.
    got = local_runs("*/20 2 * * *", "Australia/Lord_Howe", "2026-10-04 00:00", "2026-10-04 03:00")
    assert got == ["10-04 02:30 +1100", "10-04 02:40 +1100"]


def test_lord_howe_repeated_half_hour_runs_once():
    # 2026-04-05: 02:00 +1100 becomes 01:30 +1030; 01:30-01:59 happen twice.
    got = local_runs(
        "*/15 1-2 * * *", "Australia/Lord_Howe", "2026-04-05 00:00", "2026-04-05 03:00"
    )
    assert got == [
        "04-05 01:00 +1100",
        "04-05 01:15 +1100",
        "04-05 01:30 +1100",
        "04-05 01:45 +1100",
        "04-05 02:00 +1030",
        "04-05 02:15 +1030",
        "04-05 02:30 +1030",
        "04-05 02:45 +1030",
    ]

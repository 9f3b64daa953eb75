"""Schedule math: when does a schedule fire next? Pure functions, no database.

A schedule is a start wall-clock time (naive) in an IANA zone plus a type. Occurrences
are computed in that zone and returned as aware UTC datetimes. The rules (docs/SCHEDULING.md
explains them to users):

* ``once``: the start, and nothing after it.
* ``hourly``: every 3600 s of real time from the start instant. Across DST this keeps the
  minute past the hour and never skips or repeats an hour of real time.
* ``daily`` / ``weekly`` / ``monthly``: the start's wall-clock time on every day / every
  7th day / the start's day of every month. A day the month lacks (the 31st in April,
  the 30th in February) means the month's last day.
* ``cron``: the wall-clock minutes matching a five-field expression (``cronsim`` parses
  the fields and decides which days match, Debian cron's day-of-month/day-of-week rule);
  each matching wall time is placed by the same DST rules as every other type.

DST, for every type that names a wall-clock time:

* a wall time that does not exist (spring-forward gap, e.g. 02:30 on the night clocks jump
  from 02:00 to 03:00) fires at the first valid instant after the gap (03:00 local);
* a wall time that happens twice (fall-back, e.g. 01:30 when 02:00 goes back to 01:00)
  fires once, at its first occurrence (``fold=0``, still summer time).
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
import enum
import functools
import zoneinfo
from collections.abc import Callable, Iterator

import attrs
from cronsim import CronSim, CronSimError

from dancecat_core.errors import ValidationError


class ScheduleType(enum.StrEnum):
    """The built-in types' names, whose rules this module computes (here, not with the
    models, so that registering them imports no SQLAlchemy; ``dancecat_core.models``
    re-exports it). The list of types a schedule may have is the registry
    (``dancecat_core.schedule_kinds``): a plugin adds more, and the ``type`` column holds
    any registered name."""

    ONCE = "once"
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    CRON = "cron"

UTC = dt.UTC
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)
START_FORMAT = "%Y-%m-%d %H:%M"
# How far ahead a cron expression is searched for its next matching day; cronsim's own
# validation gives up after the same span.
CRON_SEARCH_YEARS = 50


def zone(name: str, field: str = "timezone") -> zoneinfo.ZoneInfo:
    """The ``ZoneInfo`` for an IANA name, or a ``ValidationError`` naming ``field``."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"{field} is required (an IANA name such as Europe/Paris)", field)
    try:
        return zoneinfo.ZoneInfo(name.strip())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"{field}: {name!r} is not an IANA time zone (such as Europe/Paris)", field
        ) from None


@attrs.frozen
class CronFields:
    """A parsed five-field expression: the minutes, hours and months it names, in order,
    and which dates it matches (day-of-month and day-of-week together)."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: frozenset[int]
    matches_day: Callable[[dt.date], bool]


@functools.lru_cache(maxsize=4096)
def _parsed_cron(text: str) -> CronFields:
    """Parsed once per expression: the scheduler asks for next runs of many schedules.

    Raises ``CronSimError`` for a malformed field and ``StopIteration`` for an expression
    that matches no date (such as the 31st of February).
    """
    parsed = CronSim(text, dt.datetime(2000, 1, 1))
    next(parsed)
    return CronFields(
        minutes=tuple(sorted(parsed.minutes)),
        hours=tuple(sorted(parsed.hours)),
        months=frozenset(parsed.months),
        matches_day=parsed.match_day,
    )


def check_cron(expr: str | None, field: str = "cron") -> str:
    """The expression, stripped, if ``cronsim`` accepts it as five fields; else why not."""
    text = (expr or "").strip()
    if not text:
        raise ValidationError(f"{field} is required for a cron schedule", field)
    if len(text.split()) != 5:
        raise ValidationError(
            f"{field}: {text!r} must have five fields: minute hour day-of-month month day-of-week",
            field,
        )
    try:
        _parsed_cron(text)
    except CronSimError as exc:
        raise ValidationError(f"{field}: {text!r} is not valid cron: {exc}", field) from None
    except StopIteration:
        raise ValidationError(f"{field}: {text!r} never matches any date", field) from None
    return text


def parse_start(text: str, field: str = "start") -> dt.datetime:
    """'YYYY-MM-DD HH:MM' (also with a 'T') as a naive wall-clock datetime."""
    if isinstance(text, dt.datetime):
        return text.replace(tzinfo=None, second=0, microsecond=0)
    raw = str(text or "").strip().replace("T", " ")
    for fmt in (START_FORMAT, "%Y-%m-%d %H:%M:%S"):
        try:
            return dt.datetime.strptime(raw, fmt).replace(second=0)
        except ValueError:
            continue
    raise ValidationError(f"{field}: {text!r} is not a date and time like 2024-05-31 08:00", field)


def is_imaginary(wall: dt.datetime) -> bool:
    """True when ``wall`` (aware, fold=0) names no real instant: it is in a DST gap."""
    return wall != wall.astimezone(UTC).astimezone(wall.tzinfo)


def to_utc(wall: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The instant a naive wall-clock time names in ``tz``, by the DST rules above."""
    local = wall.replace(tzinfo=tz, fold=0)
    instant = local.astimezone(UTC)
    if instant.astimezone(tz) == local:  # same zone: compares the wall clocks
        return instant
    # Walk to the first wall minute after the gap (gaps start and end on minutes).
    naive = wall.replace(second=0, microsecond=0)
    while is_imaginary(local):
        naive += MINUTE
        local = naive.replace(tzinfo=tz, fold=0)
    return local.astimezone(UTC)


def _month_day(year: int, month: int, day: int) -> dt.date:
    return dt.date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _add_months(year: int, month: int, count: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + count
    return index // 12, index % 12 + 1


def _cron_walls(fields: CronFields, shown: dt.datetime) -> Iterator[dt.datetime]:
    """The naive wall-clock minutes matching ``fields`` after ``shown`` (a whole minute),
    in order, searching ``CRON_SEARCH_YEARS`` years ahead."""
    first_month = shown.year * 12 + shown.month - 1
    last_month = min(shown.year + CRON_SEARCH_YEARS, dt.MAXYEAR) * 12 + 11
    for index in range(first_month, last_month + 1):
        year, month = divmod(index, 12)
        month += 1
        if month not in fields.months:
            continue
        first_day = shown.day if index == first_month else 1
        for day_number in range(first_day, calendar.monthrange(year, month)[1] + 1):
            day = dt.date(year, month, day_number)
            if not fields.matches_day(day):
                continue
            for hour, minutes in _cron_day(fields, day, shown):
                for minute in minutes:
                    yield dt.datetime(year, month, day_number, hour, minute)


def _cron_day(
    fields: CronFields, day: dt.date, shown: dt.datetime
) -> Iterator[tuple[int, tuple[int, ...]]]:
    """The hours of a matching day and each one's minutes, after ``shown`` on that day."""
    if day != shown.date():
        for hour in fields.hours:
            yield hour, fields.minutes
        return
    for hour in fields.hours[bisect.bisect_left(fields.hours, shown.hour) :]:
        if hour == shown.hour:
            yield hour, fields.minutes[bisect.bisect_right(fields.minutes, shown.minute) :]
        else:
            yield hour, fields.minutes


def _wall_series(kind: ScheduleType, start: dt.datetime, near: dt.date) -> Iterator[dt.datetime]:
    """Wall-clock occurrences of a daily/weekly/monthly schedule from a little before
    ``near`` onwards, in order (never before ``start``)."""
    clock = start.time()
    if kind == ScheduleType.DAILY:
        day = max(start.date(), near - dt.timedelta(days=2))
        while True:
            yield dt.datetime.combine(day, clock)
            day += dt.timedelta(days=1)
    elif kind == ScheduleType.WEEKLY:
        weeks = max(0, (near - start.date()).days // 7 - 1)
        day = start.date() + dt.timedelta(weeks=weeks)
        while True:
            yield dt.datetime.combine(day, clock)
            day += dt.timedelta(weeks=1)
    elif kind == ScheduleType.MONTHLY:
        months = max(0, (near.year - start.year) * 12 + near.month - start.month - 1)
        while True:
            year, month = _add_months(start.year, start.month, months)
            yield dt.datetime.combine(_month_day(year, month, start.day), clock)
            months += 1
    else:  # pragma: no cover - callers only pass the three types above
        raise ValueError(kind)


def next_after(
    kind: str,
    start_local: dt.datetime,
    timezone: str,
    after: dt.datetime,
    cron: str | None = None,
) -> dt.datetime | None:
    """The schedule's first occurrence strictly after ``after`` (aware), in UTC.

    ``None`` when there is none (a ``once`` schedule whose time has passed). The first
    occurrence of every type is at or after the start instant.
    """
    kind = ScheduleType(kind)
    tz = zone(timezone)
    after = after.astimezone(UTC)
    start = start_local.replace(tzinfo=None)
    first = to_utc(start, tz)
    if kind == ScheduleType.ONCE:
        return first if first > after else None
    after_or_start = first - dt.timedelta(microseconds=1) if after < first else after
    if kind == ScheduleType.HOURLY:
        hours = int((after_or_start - first) // HOUR) + 1
        return first + hours * HOUR
    if kind == ScheduleType.CRON:
        # A later wall minute never has an earlier instant, and the wall minute ``after``
        # shows (and every one before it) has an instant at or before ``after``; so the
        # answer is the first matching minute after that one whose instant is later.
        # Minutes of a repeated hour's second pass map to their first pass and are passed.
        shown = after_or_start.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)
        for wall in _cron_walls(_parsed_cron(check_cron(cron)), shown):
            instant = to_utc(wall, tz)
            if instant > after_or_start:
                return instant
        return None
    near = after_or_start.astimezone(tz).date()
    for wall in _wall_series(kind, start, near):
        instant = to_utc(wall, tz)
        if instant > after_or_start:
            return instant
    return None  # pragma: no cover - the series is infinite


def occurrences(
    kind: str,
    start_local: dt.datetime,
    timezone: str,
    after: dt.datetime,
    until: dt.datetime,
    cron: str | None = None,
) -> Iterator[dt.datetime]:
    """Every occurrence in ``(after, until]``, in order."""
    current = next_after(kind, start_local, timezone, after, cron)
    while current is not None and current <= until:
        yield current
        current = next_after(kind, start_local, timezone, current, cron)


def local_text(instant: dt.datetime | None, timezone: str) -> str:
    """'2024-05-31 08:00 CEST' for display; '-' for no instant."""
    if instant is None:
        return "-"
    return instant.astimezone(zone(timezone)).strftime("%Y-%m-%d %H:%M %Z")


def previous_before(
    kind: str,
    start_local: dt.datetime,
    timezone: str,
    before: dt.datetime,
    cron: str | None = None,
) -> dt.datetime | None:
    """The schedule's last occurrence strictly before ``before`` (aware), in UTC, by the
    same rules as ``next_after`` but carried on before the start, so a schedule's first
    run has a period too (a daily 07:00 schedule starting 3 Dec: 2 Dec 07:00). ``None``
    for a ``once`` schedule, which repeats nothing."""
    kind = ScheduleType(kind)
    tz = zone(timezone)
    before = before.astimezone(UTC)
    start = start_local.replace(tzinfo=None)
    if kind == ScheduleType.ONCE:
        return None
    if kind == ScheduleType.HOURLY:
        first = to_utc(start, tz)
        hours = -((first - before) // HOUR) - 1  # ceil((before - first) / 1 h) - 1
        return first + hours * HOUR
    local = before.astimezone(tz).replace(tzinfo=None)
    if kind == ScheduleType.CRON:
        walls = CronSim(check_cron(cron), local.replace(second=0, microsecond=0), reverse=True)
        for _ in range(CRON_SEARCH_YEARS * 366 * 24 * 60):
            instant = to_utc(next(walls), tz)
            if instant < before:
                return instant
        return None  # pragma: no cover - check_cron proved the expression matches a date
    for wall in _walls_back(kind, start, local.date()):
        instant = to_utc(wall, tz)
        if instant < before:
            return instant
    return None  # pragma: no cover - the candidates reach back past any gap


def _walls_back(kind: ScheduleType, start: dt.datetime, near: dt.date) -> Iterator[dt.datetime]:
    """A daily/weekly/monthly schedule's wall-clock occurrences from the day after
    ``near`` backwards, a few of them: enough to pass a DST gap or a short month."""
    clock = start.time()
    if kind == ScheduleType.DAILY:
        for back in range(-1, 4):
            yield dt.datetime.combine(near - dt.timedelta(days=back), clock)
    elif kind == ScheduleType.WEEKLY:
        offset = (near - start.date()).days % 7
        for weeks in range(-1, 3):
            yield dt.datetime.combine(near - dt.timedelta(days=offset + 7 * weeks), clock)
    else:
        for months in range(-1, 3):
            year, month = _add_months(near.year, near.month, -months)
            yield dt.datetime.combine(_month_day(year, month, start.day), clock)

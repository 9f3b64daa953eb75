"""Schedule math: the documented DST decisions, month ends, cron, and validation."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from dancecat_core.errors import ValidationError
from dancecat_core.schedules import check_cron, next_after, occurrences, parse_start, zone

UTC = dt.UTC


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(instant: dt.datetime, tz: str) -> str:
    return instant.astimezone(zoneinfo.ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z")


def series(kind, start, tz, after, until, cron=None) -> list[str]:
    start_local = dt.datetime.fromisoformat(start)
    return [local(i, tz) for i in occurrences(kind, start_local, tz, utc(after), utc(until), cron)]


def test_daily_in_spring_forward_gap_runs_at_first_valid_instant():
    # 2024-03-10: New York clocks jump from 02:00 EST to 03:00 EDT; 02:30 does not exist.
    got = series("daily", "2024-03-01 02:30", "America/New_York", "2024-03-09", "2024-03-12")
    assert got == ["2024-03-09 02:30 EST", "2024-03-10 03:00 EDT", "2024-03-11 02:30 EDT"]


def test_daily_in_fall_back_runs_once_at_first_occurrence():
    # 2024-11-03: 02:00 EDT goes back to 01:00 EST; 01:30 happens twice, we run once.
    got = series("daily", "2024-11-01 01:30", "America/New_York", "2024-11-02", "2024-11-05")
    assert got == ["2024-11-02 01:30 EDT", "2024-11-03 01:30 EDT", "2024-11-04 01:30 EST"]


def test_same_rules_in_europe():
    got = series("daily", "2024-03-01 02:30", "Europe/Berlin", "2024-03-30", "2024-04-01")
    assert got == ["2024-03-30 02:30 CET", "2024-03-31 03:00 CEST"]
    got = series("daily", "2024-10-01 02:30", "Europe/Berlin", "2024-10-26", "2024-10-28")
    assert got == ["2024-10-26 02:30 CEST", "2024-10-27 02:30 CEST"]


def test_monthly_on_31st_uses_last_day_of_shorter_months():
    got = series("monthly", "2024-01-31 08:00", "Europe/Paris", "2024-01-01", "2024-07-01")
    assert got == [
        "2024-01-31 08:00 CET",
        "2024-02-29 08:00 CET",  # leap February
        "2024-03-31 08:00 CEST",
        "2024-04-30 08:00 CEST",  # 30-day month
        "2024-05-31 08:00 CEST",
        "2024-06-30 08:00 CEST",
    ]
    got = series("monthly", "2025-01-31 08:00", "Europe/Paris", "2025-02-01", "2025-03-01")
    assert got == ["2025-02-28 08:00 CET"]


def test_monthly_day_survives_a_short_month():
    # The 31st stays the 31st after February: the day is the start's, not the last run's.
    got = series("monthly", "2025-01-31 00:00", "UTC", "2025-02-27", "2025-03-31 12:00")
    assert got == ["2025-02-28 00:00 UTC", "2025-03-31 00:00 UTC"]


def test_hourly_is_every_real_hour_across_dst():
    got = series(
        "hourly", "2024-11-01 00:15", "America/New_York", "2024-11-03 04:00", "2024-11-03 08:00"
    )
    assert got == [
        "2024-11-03 00:15 EDT",
        "2024-11-03 01:15 EDT",
        "2024-11-03 01:15 EST",
        "2024-11-03 02:15 EST",
    ]
    got = series(
        "hourly", "2024-03-01 00:15", "America/New_York", "2024-03-10 05:00", "2024-03-10 08:00"
    )
    assert got == ["2024-03-10 00:15 EST", "2024-03-10 01:15 EST", "2024-03-10 03:15 EDT"]


def test_weekly_keeps_weekday_and_wall_time():
    got = series("weekly", "2024-03-03 09:00", "America/New_York", "2024-03-01", "2024-03-20")
    assert got == ["2024-03-03 09:00 EST", "2024-03-10 09:00 EDT", "2024-03-17 09:00 EDT"]


def test_cron_follows_the_same_dst_rules():
    got = series(
        "cron", "2024-01-01 00:00", "America/New_York", "2024-03-09", "2024-03-11", "30 2 * * *"
    )
    assert got == ["2024-03-09 02:30 EST", "2024-03-10 03:00 EDT"]
    got = series(
        "cron", "2024-01-01 00:00", "America/New_York", "2024-11-02", "2024-11-04", "30 1 * * *"
    )
    assert got == ["2024-11-02 01:30 EDT", "2024-11-03 01:30 EDT"]
    # A sub-hourly expression runs each wall time of the repeated hour once, in its first
    # pass (EDT); the second pass (EST) repeats times already run.
    got = series(
        "cron",
        "2024-01-01 00:00",
        "America/New_York",
        "2024-11-03 05:10",
        "2024-11-03 07:00",
        "*/30 * * * *",
    )
    assert got == ["2024-11-03 01:30 EDT", "2024-11-03 02:00 EST"]


def test_cron_never_before_start():
    got = series("cron", "2024-05-01 12:00", "UTC", "2024-01-01", "2024-05-02", "0 0 * * *")
    assert got == ["2024-05-02 00:00 UTC"]


def test_once_fires_once():
    start = dt.datetime(2030, 1, 1, 9, 0)
    first = next_after("once", start, "Asia/Tokyo", utc("2029-01-01"))
    assert first == utc("2030-01-01 00:00")
    assert next_after("once", start, "Asia/Tokyo", first) is None


def test_strictly_after():
    start = dt.datetime(2024, 1, 1, 8, 0)
    at = utc("2024-01-05 08:00")
    assert next_after("daily", start, "UTC", at) == utc("2024-01-06 08:00")
    assert next_after("daily", start, "UTC", at - dt.timedelta(microseconds=1)) == at


@pytest.mark.parametrize(
    ("expr", "why"),
    [
        ("61 * * * *", "Bad minute"),
        ("* * * *", "five fields"),
        ("* * * * * *", "five fields"),
        ("0 0 31 2 *", "Bad day-of-month"),
        ("", "required"),
        ("a b c d e", "Bad"),
    ],
)
def test_bad_cron_is_refused_with_reason(expr, why):
    with pytest.raises(ValidationError) as caught:
        check_cron(expr)
    assert why in str(caught.value)
    assert caught.value.field == "cron"


def test_bad_inputs_name_their_field():
    with pytest.raises(ValidationError, match="IANA") as caught:
        zone("Mars/Olympus")
    assert caught.value.field == "timezone"
    with pytest.raises(ValidationError, match="like 2024-05-31 08:00") as caught:
        parse_start("31/05/2024 8h")
    assert caught.value.field == "start"
    assert parse_start("2024-05-31T08:00") == dt.datetime(2024, 5, 31, 8, 0)

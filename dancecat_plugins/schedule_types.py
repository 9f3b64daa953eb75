"""The built-in schedule types: once, hourly, daily, weekly, monthly and cron.

Their rules (DST included) are the pure functions of ``dancecat_core.schedules``; this
module only registers them, through the same ``dancecat`` entry-point group a third-party
type uses.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from dancecat_core import schedules as math
from dancecat_core.hookspecs import hookimpl
from dancecat_core.schedule_kinds import Rule, ScheduleKind
from dancecat_core.schedules import ScheduleType


class BuiltinKind(ScheduleKind):
    """A type whose rules ``dancecat_core.schedules`` computes by its name."""

    def next_after(self, rule: Rule, after: dt.datetime) -> dt.datetime | None:
        return math.next_after(self.name, rule.start_local, rule.timezone, after, rule.cron)

    def previous_before(self, rule: Rule, before: dt.datetime) -> dt.datetime | None:
        return math.previous_before(self.name, rule.start_local, rule.timezone, before, rule.cron)


class Once(BuiltinKind):
    name = ScheduleType.ONCE.value
    label = "Once"
    repeats = False


class Hourly(BuiltinKind):
    name = ScheduleType.HOURLY.value
    label = "Hourly"


class Daily(BuiltinKind):
    name = ScheduleType.DAILY.value
    label = "Daily"


class Weekly(BuiltinKind):
    name = ScheduleType.WEEKLY.value
    label = "Weekly"


class Monthly(BuiltinKind):
    name = ScheduleType.MONTHLY.value
    label = "Monthly"


class Cron(BuiltinKind):
    name = ScheduleType.CRON.value
    label = "Cron"
    fields = ("cron",)

    def check(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {"cron": math.check_cron(values.get("cron"), "cron")}


@hookimpl
def dancecat_register_schedule_types() -> list[type[ScheduleKind]]:
    return [Once, Hourly, Daily, Weekly, Monthly, Cron]

"""A third-party DanceCat plugin, installed the way any package is: a TSV exporter, a toy
driver that serves rows from memory, a notifier that posts to an outbox file, a setting of
its own and a "weekdays" schedule type. DanceCat's core knows nothing about any of them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

from dancecat_core.columns import Column, ColumnType
from dancecat_core.drivers import (
    BoundQuery,
    ConnectionParams,
    Driver,
    DriverSession,
    QueryCursor,
    as_bound,
)
from dancecat_core.errors import QueryError
from dancecat_core.exporters import Exporter, ExportSummary
from dancecat_core.hookspecs import hookimpl
from dancecat_core.notifiers import Attachment, Export, Notifier, RunNotice
from dancecat_core.resultstore import StoredResult
from dancecat_core.schedule_kinds import Rule, ScheduleKind
from dancecat_core.schedules import to_utc, zone
from dancecat_core.settings import POSITIVE_INT, SettingSpec


class TsvExporter(Exporter):
    format = "tsv"
    label = "TSV"
    media_type = "text/tab-separated-values"
    extension = "tsv"

    def export(self, result: StoredResult, sink: BinaryIO) -> ExportSummary:
        sink.write(("\t".join(c.name for c in result.columns) + "\n").encode())
        rows = 0
        for row in result.text_rows():
            sink.write(("\t".join("" if v is None else v for v in row) + "\n").encode())
            rows += 1
        return ExportSummary(rows=rows)


class _Cursor(QueryCursor):
    def __init__(self, count: int):
        self.count = count
        self.columns = [
            Column("n", ColumnType.INTEGER),
            Column("square", ColumnType.INTEGER),
            Column("secret_word", ColumnType.TEXT),
        ]

    def batches(self, size: int = 5000) -> Iterator[Sequence[Sequence[Any]]]:
        for start in range(0, self.count, size):
            yield [(n, n * n, "swordfish") for n in range(start, min(start + size, self.count))]


class _Session(DriverSession):
    def ping(self) -> None:
        pass

    def open_query(
        self, sql: str | BoundQuery, *, timeout: float, limit: int | None = None
    ) -> QueryCursor:
        query = as_bound(sql)
        if query.values:
            raise QueryError("toy driver: takes no parameters")
        words = query.parts[0].split()
        if len(words) != 2 or words[0] != "squares" or not words[1].isdigit():
            raise QueryError("toy driver: say 'squares N'")
        return _Cursor(int(words[1]))

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        pass


class ToyDriver(Driver):
    name = "toy"
    label = "Toy (squares)"
    needs_host = False

    def connect(self, params: ConnectionParams, *, timeout: float) -> DriverSession:
        return _Session()


class OutboxNotifier(Notifier):
    """One JSON line per finished run in HOME/outbox.jsonl, as a chat channel would get it:
    to one channel, whoever the job's recipients are, with the result as TSV."""

    name = "outbox"

    def recipients_for(self, emails: Sequence[str]) -> list[str]:
        return ["#reports"]

    def prepare(
        self, notice: RunNotice, export: Export | None
    ) -> tuple[RunNotice, Attachment | None]:
        if export is None:
            return notice, None
        download = export("tsv")
        return notice, Attachment(download.filename, download.media_type, b"".join(download.chunks))

    def deliver(self, notice: RunNotice, attachment: Attachment | None) -> None:
        line = {
            "to": notice.recipient,
            "text": f"{notice.job_name}: run {notice.tracker_id} {notice.status}",
            "error": notice.error,
            "file": attachment.filename if attachment else None,
            "data": attachment.data.decode() if attachment else None,
        }
        with open(self.settings.home / "outbox.jsonl", "a", encoding="utf-8") as outbox:
            outbox.write(json.dumps(line) + "\n")


@hookimpl
def dancecat_register_exporters() -> list[type[Exporter]]:
    return [TsvExporter]


@hookimpl
def dancecat_register_drivers() -> list[type[Driver]]:
    return [ToyDriver]


@hookimpl
def dancecat_register_notifiers() -> list[type[Notifier]]:
    return [OutboxNotifier]


@hookimpl
def dancecat_register_settings() -> list[SettingSpec]:
    return [SettingSpec("TOY_MAX_SQUARES", POSITIVE_INT, 1000, "most squares the toy serves")]


class Weekdays(ScheduleKind):
    """The start's wall-clock time on every Monday to Friday, from the start's day on."""

    name = "weekdays"
    label = "Weekdays"

    def next_after(self, rule: Rule, after: dt.datetime) -> dt.datetime | None:
        tz = zone(rule.timezone)
        day = max(rule.start_local.date(), after.astimezone(tz).date() - dt.timedelta(days=1))
        while True:
            if day.weekday() < 5:
                instant = to_utc(dt.datetime.combine(day, rule.start_local.time()), tz)
                if instant > after:
                    return instant
            day += dt.timedelta(days=1)

    def previous_before(self, rule: Rule, before: dt.datetime) -> dt.datetime | None:
        tz = zone(rule.timezone)
        day = before.astimezone(tz).date() + dt.timedelta(days=1)
        while True:
            if day.weekday() < 5:
                instant = to_utc(dt.datetime.combine(day, rule.start_local.time()), tz)
                if instant < before:
                    return instant
            day -= dt.timedelta(days=1)


@hookimpl
def dancecat_register_schedule_types() -> list[type[ScheduleKind]]:
    return [Weekdays]

"""The input declarations themselves: every refusal at once and by label, unset versus
empty, the console options derived from them, and an edit that gives one field keeping
the others (whichever channel sent it)."""

from __future__ import annotations

import argparse

import pytest

from dancecat_core.db import session_scope
from dancecat_core.errors import ValidationError
from dancecat_core.inputs.connection import ConnectionInput
from dancecat_core.inputs.console import add_arguments, from_args
from dancecat_core.inputs.fields import UNSET, InvalidInput
from dancecat_core.inputs.job import JobInput
from dancecat_core.inputs.schedule import ScheduleInput
from dancecat_core.models import Connection
from dancecat_core.services import connections, jobs, schedules


def test_every_refusal_is_raised_together_by_label(runtime):
    data = JobInput(name=" ", connection_id="x", query="", timeout_seconds=0, recipients=["a"])
    with pytest.raises(InvalidInput) as caught:
        data.cleaned(runtime)
    found = {problem.field: str(problem) for problem in caught.value.problems}
    assert found == {
        "name": "Name is required",
        "connection_id": "Connection must be a whole number",
        "query": "Query is required",
        "timeout_seconds": "Timeout (seconds) must be between 1 and 604800",
        "recipients": "Send result to: 'a' is not a valid email address",
    }
    assert caught.value.field == "name"
    assert caught.value.details["errors"][1] == {
        "field": "connection_id",
        "message": "Connection must be a whole number",
    }


@pytest.mark.parametrize("raw", ["[1, 2]", "null", "{not json", "7", [], 7])
def test_options_must_be_an_object_in_any_spelling(raw):
    with pytest.raises(ValidationError) as caught:
        ConnectionInput.field("options").clean(raw)
    assert str(caught.value) == "Options (JSON) must be a JSON object"
    assert caught.value.field == "options"


def test_options_with_lone_surrogates_are_refused_anywhere_inside():
    options = ConnectionInput.field("options")
    for raw in ({"\udb21": 1}, {"a": ["\ud800"]}, {"a": {"b": "x\udfff"}}, '{"a": "\\ud800"}'):
        with pytest.raises(ValidationError) as caught:
            options.clean(raw)
        assert str(caught.value) == "Options (JSON) must be valid Unicode text"
    assert options.clean({"a": {"b": ["ü", 2**70, None]}}) == {"a": {"b": ["ü", 2**70, None]}}


def test_text_refusals_cover_nul_surrogates_and_length():
    name = JobInput.field("name")
    for raw, message in [
        ("a\x00b", "Name must not contain NUL characters"),
        ("\ud800", "Name must be valid Unicode text"),
        ("n" * 201, "Name must be at most 200 characters"),
        (12, "Name must be text"),
    ]:
        with pytest.raises(ValidationError, match=message):
            name.clean(raw)
    assert name.clean("  padded  ") == "padded"
    # A password keeps its spaces: they are part of it.
    assert ConnectionInput.field("password").clean("  pw  ") == "  pw  "


def test_choices_accept_other_cases_and_refuse_lookalikes():
    kind = ScheduleInput.field("type")
    assert kind.clean(" CRON ") == "cron"
    for raw in ("cron\x00", "cr\u043en", "weekly,daily", ""):  # a Cyrillic o
        with pytest.raises(ValidationError):
            kind.clean(raw)


def test_recipients_drop_duplicates_and_refuse_blanks(runtime):
    recipients = JobInput.field("recipients")
    cleaned = recipients.clean(
        ["A@Example.com", "a@example.com", "mailto:a@example.com", "b@example.com"], runtime
    )
    assert [rule.destination for rule in cleaned] == ["a@example.com", "b@example.com"]
    with pytest.raises(ValidationError, match="Send result to: an entry is empty"):
        recipients.clean(["a@example.com", " "], runtime)
    with pytest.raises(ValidationError, match="must be a list"):
        recipients.clean("a@example.com", runtime)


def test_unset_is_not_empty():
    data = JobInput.from_values({"name": "x", "timeout_seconds": None})
    assert data.given() == {"name": "x", "timeout_seconds": None}
    assert data.annotation is UNSET
    merged = data.merged({"annotation": "kept", "timeout_seconds": 30, "name": "old"})
    assert (merged.name, merged.annotation, merged.timeout_seconds) == ("x", "kept", None)
    full = JobInput.from_values({"name": "x"}, fill_defaults=True)
    assert full.shared is False and full.recipients == ()


def _parser(input_class, *, editing: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(parser, input_class, editing=editing)
    return parser


def test_console_options_come_from_the_declarations():
    args = _parser(JobInput).parse_args(
        [
            *("weekly", "--connection", "7", "--sql", "SELECT 1", "--timeout", "30"),
            *("--recipient", "a@x.io", "--recipient", "b@x.io", "--shared"),
        ]
    )
    data = from_args(JobInput, args)
    assert data.given() == {
        "name": "weekly",
        "connection_id": "7",
        "query": "SELECT 1",
        "timeout_seconds": "30",
        "recipients": ["a@x.io", "b@x.io"],
        "shared": True,
    }
    schedule = from_args(
        ScheduleInput,
        _parser(ScheduleInput).parse_args(
            [
                *("--type", "cron", "--start", "2030-01-01 08:00", "--cron", "0 8 * * *"),
                *("--inactive", "--catch-up", "SKIP"),
            ]
        ),
    )
    assert schedule.cleaned()["catch_up"] == "skip" and schedule.cleaned()["active"] is False
    with pytest.raises(argparse.ArgumentError):
        _parser(ScheduleInput).parse_args(["--catch-up", "all"])
    assert "Timeout (seconds)" in _parser(JobInput).format_help()


def test_an_edit_giving_one_field_keeps_every_other(runtime, sqlite_chinook):
    """What the console (or any channel) sends for `--timeout 5` changes only that."""
    with session_scope(runtime.session_factory) as session:
        connection = connections.create(
            runtime,
            session,
            None,
            ConnectionInput(
                name="c",
                driver="sqlite",
                database=str(sqlite_chinook),
                read_only=False,
                shared=True,
                options={"a": 1},
                password="pw",
            ),
        )
        job = jobs.create(
            runtime,
            session,
            None,
            JobInput(
                name="j",
                connection_id=connection.id,
                query="SELECT 1",
                annotation="note",
                recipients=["a@example.com"],
                shared=True,
            ),
        )
        schedule = schedules.create(
            session,
            None,
            job.id,
            ScheduleInput(type="daily", start="2030-01-01 08:00", catch_up="skip", active=False),
        )
        before_job, before_schedule = jobs.stored(job), schedules.stored(schedule)
        before_connection = connections.stored(connection)
        edit = from_args(JobInput, _parser(JobInput, editing=True).parse_args(["--timeout", "5"]))
        jobs.update(runtime, session, None, job.id, edit)
        connections.update(runtime, session, None, connection.id, ConnectionInput(port=None))
        schedules.update(session, None, schedule.id, ScheduleInput(timezone="Asia/Tokyo"))
        assert jobs.stored(job) == {**before_job, "timeout_seconds": 5}
        assert connections.stored(connection) == before_connection
        assert schedules.stored(schedule) == {**before_schedule, "timezone": "Asia/Tokyo"}
        stored = session.get(Connection, connection.id)
        assert runtime.secret_box.decrypt(stored.password_encrypted) == "pw"

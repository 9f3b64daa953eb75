"""Schedule types come from the plugin registry: the example package's "weekdays" type
(installed through the ``dancecat`` entry-point group like any package) is offered by the
job form, the console's ``--type`` and the OpenAPI enum, and the scheduler fires it; when
its plugin is gone, its stored schedules are skipped with a log line, their queued runs
fail saying why, and the job page says so, with nothing crashing."""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path

import pytest
from sqlalchemy import select
from test_web_helpers import make_app, make_user, sign_in

from dancecat_core import console, migrations, schedule_kinds
from dancecat_core.db import session_scope
from dancecat_core.errors import PluginError, ValidationError
from dancecat_core.hookspecs import hookimpl
from dancecat_core.models import Connection, Job, Tracker, TrackerStatus
from dancecat_core.plugins import get_plugin_manager
from dancecat_core.runner import execute_tracker
from dancecat_core.runtime import build_runtime
from dancecat_core.scheduler import check_due
from dancecat_core.services import schedules as service
from dancecat_core.services.schedules import ScheduleInput

EXAMPLE = Path(__file__).parent / "plugin_example"
UTC = dt.UTC
# Friday 2030-03-01, 06:00 Paris time.
FRIDAY = dt.datetime(2030, 3, 1, 5, 0, tzinfo=UTC)
BUILT_IN = ["once", "hourly", "daily", "weekly", "monthly", "cron"]
WEEKDAYS = ScheduleInput(type="weekdays", start="2030-03-01 07:30", timezone="Europe/Paris")


def runtime_for(settings, *, with_example: bool):
    """A migrated runtime whose plugins are the installed ones, with or without the
    example package (the latter: as if it had been uninstalled)."""
    blocked = () if with_example else ("example",)
    runtime = build_runtime(settings, plugin_manager=get_plugin_manager(blocked=blocked))
    migrations.upgrade(runtime.engine)
    return runtime


@pytest.fixture
def example_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    yield
    schedule_kinds.load(get_plugin_manager())  # later tests see the installed types only


def make_job(runtime, database: Path) -> int:
    with session_scope(runtime.session_factory) as session:
        connection = Connection(name="chinook", driver="sqlite", database=str(database))
        job = Job(name="artists", connection=connection, query="SELECT 1 AS one")
        session.add_all([connection, job])
        session.flush()
        return job.id


def test_a_third_party_type_is_in_the_form_the_console_and_openapi(
    settings, example_on_path, capsys
):
    runtime = runtime_for(settings, with_example=True)
    app = make_app(runtime)
    member = make_user(runtime, "ann@example.com")
    sign_in(app, member.email)
    assert '<option value="weekdays"' in app.get("/jobs/new").text
    schema = app.get("/api/v1/openapi.json").json["components"]["schemas"]["ScheduleInput"]
    enum = schema["properties"]["type"]["enum"]
    assert sorted(enum) == sorted([*BUILT_IN, "weekdays"])
    assert [name for name in enum if name != "weekdays"] == BUILT_IN  # their own order
    with pytest.raises(SystemExit):
        console.main(["schedule", "add", "--help"])
    usage = re.search(r"--type\s+\{([^}]*)\}", capsys.readouterr().out)
    assert sorted(re.sub(r"\s", "", usage.group(1)).split(",")) == sorted([*BUILT_IN, "weekdays"])
    # The parser refuses what no plugin registers, in one line.
    assert console.main(["schedule", "add", "x", "--type", "fortnightly"]) == 2
    assert "invalid choice: 'fortnightly'" in capsys.readouterr().err
    runtime.engine.dispose()


def test_the_scheduler_fires_a_third_party_type(settings, example_on_path, sqlite_chinook):
    runtime = runtime_for(settings, with_example=True)
    job_id = make_job(runtime, sqlite_chinook)
    with session_scope(runtime.session_factory) as session:
        schedule = service.create(session, None, job_id, WEEKDAYS, now=FRIDAY)
        assert schedule.next_run_at == dt.datetime(2030, 3, 1, 6, 30, tzinfo=UTC)
    queued: list[tuple[int, dt.datetime | None]] = []
    now = FRIDAY
    while now < dt.datetime(2030, 3, 6, tzinfo=UTC):  # Friday to Tuesday, checks every 30 min
        check_due(runtime, now=now, enqueue=lambda tid, eta: queued.append((tid, eta)))
        now += dt.timedelta(minutes=30)
    with runtime.session_factory() as session:
        trackers = {tid: due for tid, due in session.execute(select(Tracker.id, Tracker.due_at))}
    # Friday, then Monday and Tuesday: not the weekend. 07:30 Paris is 06:30 UTC.
    expected = [dt.datetime(2030, 3, d, 6, 30, tzinfo=UTC) for d in (1, 4, 5)]
    assert sorted(trackers.values()) == expected
    assert sorted(tracker_id for tracker_id, _ in queued) == sorted(trackers)  # each run once
    runtime.engine.dispose()


def test_without_its_plugin_a_stored_type_is_skipped_refused_and_shown(
    settings, example_on_path, sqlite_chinook, caplog
):
    runtime = runtime_for(settings, with_example=True)
    job_id = make_job(runtime, sqlite_chinook)
    with session_scope(runtime.session_factory) as session:
        schedule_id = service.create(session, None, job_id, WEEKDAYS, now=FRIDAY).id
    # A run was claimed before the plugin went away.
    check_due(runtime, now=FRIDAY + dt.timedelta(minutes=89), enqueue=lambda tid, eta: None)
    runtime.engine.dispose()

    runtime = runtime_for(settings, with_example=False)
    assert "weekdays" not in schedule_kinds.registered()
    monday = dt.datetime(2030, 3, 4, 8, 0, tzinfo=UTC)
    with caplog.at_level(logging.WARNING, logger="dancecat_core.scheduler"):
        assert check_due(runtime, now=monday, enqueue=lambda tid, eta: None) == []
    assert f"schedule {schedule_id} (job {job_id}) not run: its type 'weekdays'" in caplog.text
    with runtime.session_factory() as session:
        (tracker_id,) = session.scalars(select(Tracker.id))
    # The queued run fails, saying why, instead of running without its dates.
    outcome = execute_tracker(runtime, tracker_id)
    assert outcome.status == TrackerStatus.FAILED
    with runtime.session_factory() as session:
        assert "schedule type 'weekdays' is not installed" in session.get(Tracker, tracker_id).error
    # Reactivating it is refused in one line naming the type.
    with session_scope(runtime.session_factory) as session:
        with pytest.raises(ValidationError, match="schedule type 'weekdays' is not installed"):
            service.set_active(session, None, schedule_id, True)
        # A new schedule of that type is refused by the registry's list.
        with pytest.raises(ValidationError, match="Schedule type must be one of once, hourly"):
            service.create(session, None, job_id, WEEKDAYS, now=FRIDAY)
    # The job page says it beside the schedule (the failed run's row says it too).
    app = make_app(runtime)
    member = make_user(runtime, "ann@example.com", admin=True)
    sign_in(app, member.email)
    page = app.get(f"/jobs/{job_id}").text
    line = "schedule type &#39;weekdays&#39; is not installed (known: once, hourly, daily,"
    assert line in page
    assert page.count("does not run until the plugin is installed again") == 1
    runtime.engine.dispose()


def test_two_plugins_registering_one_type_name_stop_start_up(settings):
    class Again(schedule_kinds.ScheduleKind):
        name = "daily"
        label = "Daily again"

    class Plugin:
        @hookimpl
        def dancecat_register_schedule_types(self):
            return [Again]

    pm = get_plugin_manager()
    pm.register(Plugin())
    with pytest.raises(PluginError, match="two plugins register the schedule type name 'daily'"):
        build_runtime(settings, plugin_manager=pm)


def test_the_form_shows_the_cron_field_for_every_type_that_reads_it(settings):
    """The cron field belongs to whichever types declare ``fields = ("cron",)``, not to
    the one named "cron": a plugin's cron-reading type gets it, "daily" does not."""

    class Quartz(schedule_kinds.ScheduleKind):
        name = "quartz"
        label = "Quartz expression"
        fields = ("cron",)

        def next_after(self, rule, after):
            return schedule_kinds.get("cron").next_after(rule, after)

    class Plugin:
        @hookimpl
        def dancecat_register_schedule_types(self):
            return [Quartz]

    pm = get_plugin_manager()
    pm.register(Plugin())
    runtime = build_runtime(settings, plugin_manager=pm)
    migrations.upgrade(runtime.engine)
    try:
        app = make_app(runtime)
        owner = make_user(runtime, "ann@example.com")
        sign_in(app, owner.email)
        page = app.get("/jobs/new").text
        listed = re.findall(r'data-cron-types="([^"]*)"', page)
        assert listed and all(sorted(types.split()) == ["cron", "quartz"] for types in listed)
        for kind, shown in (("quartz", True), ("daily", False)):
            with session_scope(runtime.session_factory) as session:
                connection = Connection(name=kind, driver="sqlite", database=":memory:")
                job = Job(name=kind, connection=connection, query="SELECT 1", owner_id=owner.id)
                session.add_all([connection, job])
                session.flush()
                cron = "30 7 * * 1-5" if shown else None
                start = "2030-03-01 07:30"
                data = ScheduleInput(type=kind, start=start, timezone="UTC", cron=cron)
                service.create(session, None, job.id, data)
                job_id = job.id
            form = app.get(f"/jobs/{job_id}/edit").text.split('<template id="schedule-template"')[0]
            cron_div = re.search(r'<div [^>]*data-role="cron-field"[^>]*>', form)
            assert (" hidden" not in cron_div.group(0)) is shown, kind
    finally:
        runtime.engine.dispose()
        schedule_kinds.load(get_plugin_manager())

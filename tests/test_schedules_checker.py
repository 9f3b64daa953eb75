"""The checker against a real app database and a real huey queue.

* time travel: a simulated month of hourly/daily/weekly/monthly schedules in two zones,
  across a spring-forward (Sydney) and a fall-back (Berlin), equals a dateutil.rrule
  oracle: zero missed, zero doubled, none enqueued to start before its due time;
* catch-up after downtime, per policy; ``schedule_update`` idempotent;
* inactive, deleted and job-deleted schedules never fire;
* a race of checker processes on one PostgreSQL app database: one tracker and one queued
  run per occurrence.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from dateutil import rrule
from dateutil import tz as dtz
from sqlalchemy import select

from dancecat_core import db, migrations, tasks
from dancecat_core.models import Connection, Job, JobRecipient, Schedule, Tracker
from dancecat_core.runtime import build_runtime
from dancecat_core.scheduler import check_due
from dancecat_core.services import jobs as job_service
from dancecat_core.services import schedules as service
from dancecat_core.services.schedules import ScheduleInput
from dancecat_core.settings import load_settings

UTC = dt.UTC
ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def make_settings(tmp_path: Path, **env: str):
    environ = {
        "DANCECAT_HOME": str(tmp_path / "home"),
        "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
        "DANCECAT_HUEY_NAME": f"dc-test-{uuid.uuid4().hex[:10]}",
        **{f"DANCECAT_{k}": str(v) for k, v in env.items()},
    }
    return load_settings(environ=environ), environ


def make_job(session, chinook: Path, sql: str = "SELECT 1 AS one", recipients=()) -> Job:
    connection = Connection(
        name=f"c-{uuid.uuid4().hex[:6]}", driver="sqlite", database=str(chinook)
    )
    job = Job(name=f"job-{uuid.uuid4().hex[:6]}", connection=connection, query=sql)
    job.recipients = [JobRecipient(destination=r) for r in recipients]
    session.add_all([connection, job])
    session.flush()
    return job


@pytest.fixture
def fast_dir(tmp_path):
    """A directory on tmpfs when there is one: thousands of SQLite commits, no disk syncs."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="dancecat-test-", dir=shm))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def app(fast_dir, sqlite_chinook):
    """A migrated SQLite app database, its runtime and a SqliteHuey queue, 30-min checks."""
    settings, _ = make_settings(fast_dir, FREQUENCY_INTERVAL_SECONDS=1800)
    runtime = build_runtime(settings)
    migrations.upgrade(runtime.engine)
    tasks.configure(runtime=runtime)
    with db.session_scope(runtime.session_factory) as session:
        job_id = make_job(session, sqlite_chinook).id
    yield runtime, job_id
    tasks.huey.storage.flush_queue()
    tasks.configure(None)
    runtime.engine.dispose()


# --- the oracle: dateutil only, none of DanceCat's schedule code ---------------------------


def oracle_instant(naive: dt.datetime, zone: str) -> dt.datetime:
    """Wall time -> UTC by the documented rules, computed with dateutil.tz."""
    tzinfo = dtz.gettz(zone)
    local = naive.replace(tzinfo=tzinfo)
    while not dtz.datetime_exists(local):  # spring-forward gap: first valid minute after
        local += dt.timedelta(minutes=1)
        local = local.replace(tzinfo=tzinfo)
    if dtz.datetime_ambiguous(local):  # fall-back: the first of the two
        local = dtz.enfold(local, fold=0)
    return local.astimezone(UTC)


def oracle(kind: str, start: dt.datetime, zone: str, until: dt.datetime) -> list[dt.datetime]:
    if kind == "hourly":
        first = oracle_instant(start, zone).replace(tzinfo=None)
        rule = rrule.rrule(rrule.HOURLY, dtstart=first)
        return [
            t.replace(tzinfo=UTC) for t in rule.between(first, until.replace(tzinfo=None), inc=True)
        ]
    if kind == "monthly":
        rule = rrule.rrule(
            rrule.MONTHLY,
            dtstart=start,
            bymonthday=tuple(range(28, start.day + 1)) if start.day >= 28 else start.day,
            bysetpos=-1 if start.day >= 28 else None,
            byhour=start.hour,
            byminute=start.minute,
        )
    else:
        freq = {"daily": rrule.DAILY, "weekly": rrule.WEEKLY}[kind]
        rule = rrule.rrule(freq, dtstart=start)
    out = []
    for naive in rule:
        instant = oracle_instant(naive, zone)
        if instant > until:
            break
        out.append(instant)
    return out


def test_time_travel_month_two_zones_matches_oracle(app):
    runtime, job_id = app
    sim_start = dt.datetime(2027, 9, 28, tzinfo=UTC)
    sim_end = dt.datetime(2027, 11, 2, tzinfo=UTC)
    # Sydney springs forward on 2027-10-03 (02:00 -> 03:00); Berlin falls back on
    # 2027-10-31 (03:00 -> 02:00). 02:30 is in the gap in one and repeated in the other.
    specs = []
    for zone in ("Australia/Sydney", "Europe/Berlin"):
        specs += [
            ("hourly", "2027-09-01 00:15", zone),
            ("daily", "2027-09-01 02:30", zone),
            ("daily", "2027-09-01 09:00", zone),
            ("weekly", "2027-09-05 02:30", zone),  # Sundays, like both DST changes
            ("monthly", "2027-08-31 02:30", zone),  # the 31st: Sept 30, Oct 31 (Berlin fold)
        ]
    created = {}
    with db.session_scope(runtime.session_factory) as session:
        for kind, start, zone in specs:
            schedule = service.create(
                session,
                None,
                job_id,
                ScheduleInput(type=kind, start=start, timezone=zone),
                now=sim_start,
            )
            created[schedule.id] = (kind, dt.datetime.fromisoformat(start), zone)

    rng = random.Random(7)
    now = sim_start
    checks = 0
    claimed = []
    while now < sim_end:
        for claim in check_due(runtime, now=now, enqueue=tasks.enqueue_run):
            if claim.tracker_id is not None:
                claimed.append((claim, now))
        checks += 1
        # Checks are irregular: 30 min +- 10 min apart, never aligned to the occurrences.
        now += dt.timedelta(seconds=1800 + rng.randint(-600, 600))
    last_check = now - dt.timedelta(seconds=1)

    fired = collections.defaultdict(list)
    for claim, at in claimed:
        fired[claim.schedule_id].append(claim.due_at)
        assert claim.eta == claim.due_at, "every run is enqueued with eta = its due time"
        assert at <= claim.due_at, "claimed before it was due, so it can start on time"
    missed = doubled = 0
    for schedule_id, (kind, start, zone) in created.items():
        expected = [t for t in oracle(kind, start, zone, last_check) if t > sim_start]
        got = sorted(t for t in fired[schedule_id] if t <= last_check)
        doubled += len(got) - len(set(got))
        missed += len(set(expected) - set(got))
        assert sorted(set(got)) == expected, (kind, zone)
    assert (missed, doubled) == (0, 0)

    # The real queue holds exactly one run per tracker, each with eta = due time.
    with runtime.session_factory() as session:
        trackers = {t.id: t.due_at for t in session.scalars(select(Tracker))}
    queued = collections.Counter()
    for task in tasks.huey.pending():
        tracker_id = task.args[0]
        queued[tracker_id] += 1
        assert task.eta == trackers[tracker_id].replace(tzinfo=None)
    assert set(queued) == set(trackers) and max(queued.values()) == 1
    print(f"\ntime travel: {checks} checks, {len(trackers)} runs, missed 0, doubled 0, early 0")
    # DST spot checks, in local time.
    sydney_daily = next(
        sid
        for sid, v in created.items()
        if v[0] == "daily" and v[2] == "Australia/Sydney" and v[1].hour == 2
    )
    days = {
        t.astimezone(dtz.gettz("Australia/Sydney")).strftime("%m-%d %H:%M")
        for t in fired[sydney_daily]
    }
    assert "10-03 03:00" in days and "10-03 02:30" not in days
    berlin_monthly = next(
        sid for sid, v in created.items() if v[0] == "monthly" and v[2] == "Europe/Berlin"
    )
    assert [t.isoformat() for t in sorted(fired[berlin_monthly])] == [
        "2027-09-30T00:30:00+00:00",
        "2027-10-31T00:30:00+00:00",  # 02:30 CEST, the first of the two 02:30s
    ]


def _hourly(runtime, job_id, catch_up: str, now: dt.datetime) -> int:
    with db.session_scope(runtime.session_factory) as session:
        return service.create(
            session,
            None,
            job_id,
            ScheduleInput(
                type="hourly", start="2027-01-01 00:00", timezone="UTC", catch_up=catch_up
            ),
            now=now,
        ).id


def test_catch_up_after_downtime_per_policy(app):
    runtime, job_id = app
    t0 = dt.datetime(2027, 1, 1, 10, 5, tzinfo=UTC)
    once = _hourly(runtime, job_id, "once", t0)
    skip = _hourly(runtime, job_id, "skip", t0)
    # 10:05 claims 11:00 on time (checks every 30 min claim the coming hour).
    first = check_due(runtime, now=t0, enqueue=tasks.enqueue_run)
    assert {(c.schedule_id, c.due_at.hour, c.eta is not None) for c in first} == {
        (once, 11, True),
        (skip, 11, True),
    }
    later = t0 + dt.timedelta(hours=5, minutes=10)  # down from 10:05 to 15:15
    got = collections.defaultdict(list)
    for claim in check_due(runtime, now=later, enqueue=tasks.enqueue_run):
        got[claim.schedule_id].append(claim)
    catch_up, on_time = got[once]
    assert catch_up.due_at == dt.datetime(2027, 1, 1, 15, 0, tzinfo=UTC)  # the newest missed
    assert catch_up.eta is None and catch_up.missed == 3  # runs now; 12:00 .. 14:00 skipped
    assert on_time.due_at == on_time.eta == dt.datetime(2027, 1, 1, 16, 0, tzinfo=UTC)
    skipped, skip_on_time = got[skip]
    assert skipped.tracker_id is None and skipped.missed == 4  # 12:00 .. 15:00
    assert skip_on_time.due_at == dt.datetime(2027, 1, 1, 16, 0, tzinfo=UTC)
    with runtime.session_factory() as session:
        for sid in (once, skip):
            next_run = session.get(Schedule, sid).next_run_at
            assert next_run == dt.datetime(2027, 1, 1, 17, 0, tzinfo=UTC)
        dues = sorted((t.schedule_id, t.due_at.hour) for t in session.scalars(select(Tracker)))
        assert dues == [(once, 11), (once, 15), (once, 16), (skip, 11), (skip, 16)]
    # A second check at the same moment changes nothing.
    assert [c for c in check_due(runtime, now=later) if c.tracker_id] == []


def test_inactive_deleted_and_job_deleted_schedules_never_fire(app):
    runtime, job_id = app
    now = dt.datetime(2027, 1, 1, 10, 0, tzinfo=UTC)
    with db.session_scope(runtime.session_factory) as session:

        def make(**kw) -> int:
            data = ScheduleInput(type="hourly", start="2027-01-01 00:30", timezone="UTC", **kw)
            return service.create(session, None, job_id, data, now=now).id

        make(active=False)  # inactive from the start
        removed = make()
        paused = make()
    # Claim the 10:30 occurrence of ``paused``, then pause it before it is due.
    claims = check_due(runtime, now=now + dt.timedelta(minutes=5))
    assert {c.schedule_id for c in claims if c.tracker_id} == {removed, paused}
    with db.session_scope(runtime.session_factory) as session:
        service.delete(session, None, removed, now=now + dt.timedelta(minutes=6))
        service.set_active(session, None, paused, False, now=now + dt.timedelta(minutes=6))
    with runtime.session_factory() as session:
        assert session.scalars(select(Tracker)).all() == []  # withdrawn before they started
    for minutes in range(10, 300, 15):
        assert check_due(runtime, now=now + dt.timedelta(minutes=minutes)) == []
    # A deleted job's schedules are deleted with it.
    with db.session_scope(runtime.session_factory) as session:
        service.set_active(session, None, paused, True, now=now + dt.timedelta(hours=5))
        job_service.delete(session, None, job_id)
    assert check_due(runtime, now=now + dt.timedelta(hours=7)) == []


def test_service_validation_names_fields(app):
    runtime, job_id = app
    from dancecat_core.errors import ValidationError

    now = dt.datetime(2027, 1, 1, tzinfo=UTC)
    cases = [
        (ScheduleInput(type="fortnightly", start="2027-02-01 00:00"), "type"),
        (ScheduleInput(type="cron", start="2027-02-01 00:00", cron="* * *"), "cron"),
        (ScheduleInput(type="daily", start="2027-02-01 00:00", cron="* * * * *"), "cron"),
        (
            ScheduleInput(type="daily", start="2027-02-01 00:00", timezone="Nowhere/Town"),
            "timezone",
        ),
        (ScheduleInput(type="once", start="2026-12-31 23:00", timezone="UTC"), "start"),
        (ScheduleInput(type="daily", start="tomorrow"), "start"),
        (ScheduleInput(type="daily", start="2027-02-01 00:00", catch_up="all"), "catch_up"),
    ]
    with db.session_scope(runtime.session_factory) as session:
        for data, field in cases:
            with pytest.raises(ValidationError) as caught:
                service.create(session, None, job_id, data, now=now)
            assert caught.value.field == field, (data, str(caught.value))


def test_schedule_update_command_is_idempotent(tmp_path, sqlite_chinook):
    settings, environ = make_settings(tmp_path, FREQUENCY_INTERVAL_SECONDS=60)
    runtime = build_runtime(settings)
    migrations.upgrade(runtime.engine)
    now = dt.datetime.now(UTC)
    with db.session_scope(runtime.session_factory) as session:
        job_id = make_job(session, sqlite_chinook).id
        sid = service.create(
            session,
            None,
            job_id,
            ScheduleInput(type="hourly", start="2020-01-01 00:07", timezone="UTC"),
            now=now,
        ).id
        # Pretend the server was down for three hours.
        session.get(Schedule, sid).next_run_at -= dt.timedelta(hours=3)
    env = {**os.environ, **environ}
    command = [PYTHON, "-m", "dancecat_core.console", "schedule_update"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    assert f"schedule {sid} (job {job_id}): tracker" in first.stdout
    assert "skipped 2 missed" in first.stdout and "1 outdated schedule(s) updated" in first.stdout
    second = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    assert second.stdout.strip() == "no outdated schedules"
    listing = subprocess.run(
        [PYTHON, "-m", "dancecat_core.console", "schedule", "list"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert ":07:00Z" in listing.stdout
    runtime.engine.dispose()


RACER = r"""
import datetime as dt, json, sys, time
from dancecat_core import tasks
from dancecat_core.runtime import build_runtime
from dancecat_core.scheduler import check_due
runtime = build_runtime()
tasks.configure(runtime=runtime)
start_at, now = float(sys.argv[1]), dt.datetime.fromisoformat(sys.argv[2])
runtime.engine.connect().close()
while time.time() < start_at:
    time.sleep(0.0005)
claims = []
for _ in range(3):
    for c in check_due(runtime, now=now, enqueue=tasks.enqueue_run):
        if c.tracker_id is not None:
            claims.append([c.schedule_id, c.due_at.isoformat(), c.tracker_id])
print(json.dumps(claims))
"""


def test_racing_checkers_on_postgresql_claim_each_occurrence_once(
    tmp_path, pg_database, redis_url, sqlite_chinook
):
    processes, schedules_count = 6, 40
    settings, environ = make_settings(
        tmp_path,
        DATABASE_URL=pg_database["url"],
        REDIS_URL=redis_url,
        FREQUENCY_INTERVAL_SECONDS=450,
    )
    runtime = build_runtime(settings)
    migrations.upgrade(runtime.engine)
    now = dt.datetime.now(UTC).replace(second=0, microsecond=0) + dt.timedelta(seconds=30)
    with db.session_scope(runtime.session_factory) as session:
        job_id = make_job(session, sqlite_chinook).id
        for _ in range(schedules_count):
            service.create(
                session,
                None,
                job_id,
                ScheduleInput(
                    type="cron", start="2020-01-01 00:00", cron="* * * * *", timezone="UTC"
                ),
                now=now,
            )
    # Every minute in (now, now + 2 x 450 s] is an occurrence of each schedule.
    expected = {
        (sid, (now.replace(second=0) + dt.timedelta(minutes=m)).isoformat())
        for sid in range(1, schedules_count + 1)
        for m in range(1, 16)
    }
    env = {**os.environ, **environ}
    start_at = time.time() + 3
    racers = [
        subprocess.Popen(
            [PYTHON, "-c", RACER, str(start_at), now.isoformat()],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(processes)
    ]
    outputs = []
    for racer in racers:
        out, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    claimed = collections.Counter((sid, due) for claims in outputs for sid, due, _ in claims)
    duplicates = sum(n - 1 for n in claimed.values() if n > 1)
    missed = len(expected - set(claimed))
    with runtime.session_factory() as session:
        rows = session.execute(select(Tracker.schedule_id, Tracker.due_at)).all()
    in_db = collections.Counter((sid, due.isoformat()) for sid, due in rows)
    queue = tasks
    queue.configure(runtime=runtime)
    enqueued = collections.Counter(task.args[0] for task in queue.huey.pending())
    queue.huey.storage.flush_queue()
    queue.configure(None)
    print(
        f"\nrace: {processes} checkers, {len(expected)} occurrences: duplicates {duplicates}, "
        f"missed {missed}; per process {[len(o) for o in outputs]}"
    )
    assert (duplicates, missed) == (0, 0)
    assert set(in_db) == expected and max(in_db.values()) == 1
    assert len(enqueued) == len(expected) and max(enqueued.values()) == 1
    runtime.engine.dispose()


def test_batched_claims_over_several_batches_and_an_existing_tracker(app, monkeypatch):
    """Batches smaller than the due list claim everything once; an occurrence that already
    has its tracker (UNIQUE(schedule_id, due_at)) sends that batch down the one-by-one
    path, which advances past it without a second tracker."""
    from dancecat_core import scheduler

    runtime, job_id = app
    monkeypatch.setattr(scheduler, "CLAIM_BATCH", 3)
    now = dt.datetime(2027, 1, 1, 10, 5, tzinfo=UTC)
    with db.session_scope(runtime.session_factory) as session:
        ids = [
            service.create(
                session,
                None,
                job_id,
                ScheduleInput(type="hourly", start="2027-01-01 00:00", timezone="UTC"),
                now=now,
            ).id
            for _ in range(10)
        ]
        eleven = dt.datetime(2027, 1, 1, 11, 0, tzinfo=UTC)
        session.add(Tracker(job_id=job_id, schedule_id=ids[4], due_at=eleven))
    claims = check_due(runtime, now=now, enqueue=tasks.enqueue_run)
    got = collections.Counter(c.schedule_id for c in claims if c.tracker_id is not None)
    assert got == {sid: 1 for sid in ids if sid != ids[4]}
    with runtime.session_factory() as session:
        trackers = collections.Counter(
            (t.schedule_id, t.due_at) for t in session.scalars(select(Tracker))
        )
        assert set(trackers) == {(sid, eleven) for sid in ids} and max(trackers.values()) == 1
        for sid in ids:
            assert session.get(Schedule, sid).next_run_at == eleven + dt.timedelta(hours=1)
        assert session.get(Job, job_id).run_count == 9
    assert check_due(runtime, now=now) == []

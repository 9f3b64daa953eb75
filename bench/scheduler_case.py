"""Scheduler at scale: 100,000 active schedules, 1% due in the same minute.

1. One check (``dancecat_core.scheduler.check_due``, the function every consumer runs)
   claims the 1,000 due occurrences and enqueues their runs on Redis: timed, target < 1 s.
   Its due-schedule query is captured as it runs and EXPLAINed with the same parameters:
   the plan must use ``ix_schedules_due`` (active, next_run_at), not a scan.
2. Start lateness: 1,000 schedules due at one instant a little ahead, 4 consumer processes
   (``dancecat worker --workers 1``) on Redis claim and run them (trivial jobs: ``SELECT 1``
   on SQLite); lateness = tracker.started_at - due_at; p50 and p99, target p99 < 2 s.

Runs in its own app database (``dc_bench_sched``), rebuilt each time so counts are exact.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import config, data
from bench.report import Row

UTC = dt.UTC
SCHEDULES = 100_000
DUE = 1_000
CONSUMERS = 4


def _recreate_database(name: str) -> None:
    data._psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', "postgres")
    data._psql(f'CREATE DATABASE "{name}"', "postgres")


def _settings_env(home: str, database: str) -> dict[str, str]:
    return {
        **os.environ,
        "DANCECAT_HOME": home,
        "DANCECAT_DATABASE_URL": config.pg_url(database),
        "DANCECAT_REDIS_URL": config.REDIS_URL,
        "DANCECAT_HUEY_NAME": f"dc-bench-sched-{os.getpid()}",
        "DANCECAT_RESULT_STORE": "file",
    }


def _build(env: dict[str, str]):
    from dancecat_core import migrations
    from dancecat_core.runtime import build_runtime
    from dancecat_core.settings import load_settings

    runtime = build_runtime(load_settings(environ=env))
    migrations.upgrade(runtime.engine)
    return runtime


def _populate(runtime, due_at: dt.datetime, log: Callable[[str], None]) -> None:
    """One SQLite connection, 1,000 trivial jobs, 100,000 daily schedules (1,000 due)."""
    from sqlalchemy import insert

    from dancecat_core.models import Connection, Job, Schedule

    clock = time.monotonic()
    chinook = str(config.ROOT / "examples" / "chinook.sqlite")
    now = dt.datetime.now(UTC)
    with runtime.engine.begin() as conn:
        conn.execute(
            insert(Connection).values(
                name="bench-sqlite",
                driver="sqlite",
                database=chinook,
                read_only=True,
                options_json="{}",
                shared=True,
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            insert(Job),
            [
                {
                    "name": f"trivial-{i}",
                    "annotation": "",
                    "connection_id": 1,
                    "query": "SELECT 1",
                    "shared": True,
                    "created_at": now,
                    "updated_at": now,
                    "run_count": 0,
                }
                for i in range(DUE)
            ],
        )
        start = due_at.replace(tzinfo=None)
        rows: list[dict[str, Any]] = []
        for i in range(SCHEDULES):
            due = i < DUE
            rows.append(
                {
                    "job_id": 1 + i % DUE,
                    "type": "daily",
                    # The rest are due 10 min to a day later: past any check's horizon.
                    "start_local": start if due else start + dt.timedelta(minutes=10 + i % 1400),
                    "timezone": "UTC",
                    "catch_up": "once",
                    "active": True,
                    "next_run_at": due_at if due else due_at + dt.timedelta(minutes=10 + i % 1400),
                    "created_at": now,
                    "updated_at": now,
                }
            )
        conn.execute(insert(Schedule), rows)
    with runtime.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    log(
        f"  app database: {SCHEDULES:,} schedules ({DUE:,} due at {due_at:%H:%M:%S}), "
        f"{DUE:,} jobs, in {time.monotonic() - clock:.1f} s"
    )


def _capture_schedule_selects(runtime) -> tuple[list[tuple[str, Any]], Callable[[], None]]:
    from sqlalchemy import event

    seen: list[tuple[str, Any]] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if (
            statement.lstrip().upper().startswith("SELECT")
            and "FROM schedules" in statement
            and "next_run_at <=" in statement
        ):
            seen.append((statement, parameters))

    event.listen(runtime.engine, "before_cursor_execute", before)
    return seen, lambda: event.remove(runtime.engine, "before_cursor_execute", before)


def _time_statements(runtime) -> tuple[dict[str, list[float]], Callable[[], None]]:
    """Round trips by kind (SELECT, UPDATE, INSERT, COMMIT): where a check's time goes."""
    from sqlalchemy import event

    spent: dict[str, list[float]] = {}
    starts: list[float] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        starts.append(time.perf_counter())

    def after(conn, cursor, statement, parameters, context, executemany):
        verb = statement.lstrip().split(None, 1)[0].upper()
        spent.setdefault(verb, []).append(time.perf_counter() - starts.pop())

    def commit_start(conn):
        starts.append(time.perf_counter())

    def commit_end(conn):
        spent.setdefault("COMMIT", []).append(time.perf_counter() - starts.pop())

    # commit: time it around the DBAPI commit via the pool's reset-free connection events.
    from sqlalchemy.engine import Connection

    original = Connection._commit_impl

    def timed_commit(self):
        commit_start(self)
        try:
            return original(self)
        finally:
            commit_end(self)

    Connection._commit_impl = timed_commit  # type: ignore[method-assign]
    event.listen(runtime.engine, "before_cursor_execute", before)
    event.listen(runtime.engine, "after_cursor_execute", after)

    def stop() -> None:
        Connection._commit_impl = original  # type: ignore[method-assign]
        event.remove(runtime.engine, "before_cursor_execute", before)
        event.remove(runtime.engine, "after_cursor_execute", after)

    return spent, stop


def _explain(runtime, statement: str, parameters: Any) -> str:
    raw = runtime.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("EXPLAIN (COSTS OFF) " + statement, parameters)
        plan = "\n".join(r[0] for r in cursor.fetchall())
        raw.rollback()
        return plan
    finally:
        raw.close()


def claim_case(log: Callable[[str], None]) -> tuple[list[Row], list[str]]:
    from dancecat_core import scheduler, tasks

    home = str(config.RESULTS / "home-sched")
    env = _settings_env(home, config.SCHED_DB)
    _recreate_database(config.SCHED_DB)
    runtime = _build(env)
    now = dt.datetime.now(UTC)
    due_at = now.replace(second=0, microsecond=0)  # due in this very minute
    _populate(runtime, due_at, log)
    tasks.configure(runtime=runtime)
    tasks.huey.flush()
    enqueued: list[int] = []

    def enqueue(tracker_id: int, eta: dt.datetime | None) -> None:
        tasks.enqueue_run(tracker_id, eta)
        enqueued.append(tracker_id)

    seen, stop = _capture_schedule_selects(runtime)
    spent, stop_timing = _time_statements(runtime)
    clock = time.perf_counter()
    claims = scheduler.check_due(runtime, enqueue=enqueue)
    seconds = time.perf_counter() - clock
    stop_timing()
    stop()
    breakdown = ", ".join(
        f"{len(v):,} {k} {sum(v):.2f} s"
        for k, v in sorted(spent.items(), key=lambda kv: -sum(kv[1]))
    )
    log(f"  database round trips during the check: {breakdown}")
    queued = len(tasks.huey)
    plan = _explain(runtime, *seen[0]) if seen else "(no due-schedule SELECT was seen)"
    uses_index = "ix_schedules_due" in plan
    scan = "Seq Scan on schedules" in plan
    log(
        f"  one check: {len(claims):,} claims, {len(enqueued):,} enqueued ({queued:,} in Redis) "
        f"in {seconds:.2f} s"
    )
    log("  plan of the due-schedule query:\n    " + plan.replace("\n", "\n    "))
    tasks.huey.flush()
    runtime.engine.dispose()
    ok = len(enqueued) == DUE and seconds < 1.0
    rows = [
        Row(
            case=f"scheduler: one check claims + enqueues {DUE:,} due of {SCHEDULES:,} schedules",
            ours=f"{seconds:.2f}",
            target="< 1 s, index",
            holds=("yes" if ok and uses_index and not scan else "NO"),
        )
    ]
    notes = [
        f"Scheduler check: {len(claims):,} claims, {len(enqueued):,} runs enqueued on Redis in "
        f"{seconds:.2f} s ({seconds / max(1, len(claims)) * 1000:.1f} ms per claim); the "
        f"due-schedule query {'uses ix_schedules_due' if uses_index else 'does NOT use the index'}"
        f": `{' / '.join(line.strip() for line in plan.splitlines())}`. Round trips during "
        f"the check: {breakdown}."
    ]
    return rows, notes


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (``/proc/PID/stat``), 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_snapshot(runtime, consumers: list[int]) -> dict[str, float]:
    """CPU seconds so far of the consumers, of the PostgreSQL backends serving the bench's
    app database (this process's own excluded) and of the Redis server: what the runs cost
    in CPU, which the machine's load moves much less than wall time."""
    import redis

    with runtime.engine.connect() as conn:
        backends = (
            conn.exec_driver_sql(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
            .scalars()
            .all()
        )
    info = redis.Redis.from_url(config.REDIS_URL).info("cpu")
    return {
        "consumers": sum(_cpu_seconds(pid) for pid in consumers),
        "postgres": sum(_cpu_seconds(pid) for pid in backends),
        "redis": float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
    }


def lateness_case(log: Callable[[str], None], quick: bool) -> tuple[list[Row], list[str]]:
    from sqlalchemy import select

    from dancecat_core.models import FINISHED, Tracker, TrackerStatus

    home = str(config.RESULTS / "home-sched")
    env = _settings_env(home, config.SCHED_DB)
    _recreate_database(config.SCHED_DB)
    runtime = _build(env)
    lead = 25  # seconds for 4 consumers to start and make their first check
    # Populating takes 7 s on a quiet machine and over 20 s on a busy one: the due time
    # leaves room for both, and the consumers start ``lead`` seconds before it.
    due_at = (dt.datetime.now(UTC) + dt.timedelta(seconds=lead + 45)).replace(microsecond=0)
    _populate(runtime, due_at, log)
    wait = (due_at - dt.datetime.now(UTC)).total_seconds() - lead
    if wait > 0:
        time.sleep(wait)
    else:
        log(f"  populating took long: the consumers start {lead + wait:.0f} s before due")
    from dancecat_core import tasks

    tasks.configure(runtime=runtime)
    tasks.huey.flush()
    dancecat = str(config.ROOT / ".venv" / "bin" / "dancecat")
    logs = [open(config.RESULTS / f"sched-worker-{i}.log", "wb") for i in range(CONSUMERS)]  # noqa: SIM115
    procs = [
        subprocess.Popen(
            [dancecat, "worker", "--workers", "1"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=config.ROOT,
        )
        for log_file in logs
    ]
    spy = None
    try:
        pyspy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
        if os.environ.get("DC_BENCH_PROFILE") and pyspy:
            # py-spy on one consumer while the due runs go through it (see bench/README.md).
            spy = subprocess.Popen(
                [
                    pyspy,
                    "record",
                    "--pid",
                    str(procs[0].pid),
                    "--duration",
                    str(lead + 30),
                    "--format",
                    "raw",
                    "--nonblocking",
                    # DC_BENCH_PROFILE=gil: only samples holding the GIL (CPU, not waits).
                    *(["--gil"] if os.environ["DC_BENCH_PROFILE"] == "gil" else []),
                    "-o",
                    str(config.RESULTS / "sched-worker-0.folded"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + lead + 240
        # From just before the due time to the last run's end: the runs' CPU.
        time.sleep(max(0.0, (due_at - dt.datetime.now(UTC)).total_seconds() - 1))
        before = _cpu_snapshot(runtime, [p.pid for p in procs])
        done = 0
        while time.monotonic() < deadline:
            time.sleep(1)
            with runtime.session_factory() as session:
                statuses = session.scalars(select(Tracker.status)).all()
            done = sum(TrackerStatus(s) in FINISHED for s in statuses)
            if done >= DUE:
                break
        after = _cpu_snapshot(runtime, [p.pid for p in procs])
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs + ([spy] if spy else []):
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log_file in logs:
            log_file.close()
    with runtime.session_factory() as session:
        facts = session.execute(
            select(Tracker.due_at, Tracker.started_at, Tracker.status, Tracker.worker)
        ).all()
        durations = sorted(
            d for d in session.scalars(select(Tracker.duration_ms)).all() if d is not None
        )
    tasks.huey.flush()
    runtime.engine.dispose()
    started = [(s - d).total_seconds() for d, s, _, _ in facts if s is not None and d]
    statuses: dict[str, int] = {}
    for *_, status, _w in facts:
        statuses[status] = statuses.get(status, 0) + 1
    workers = {w.split(":")[1] for *_, w in facts if w}
    if len(started) < 2:
        return [Row(case="scheduler: start lateness", holds="error")], [
            f"Start lateness: only {len(started)} of {DUE} runs started; statuses {statuses}; "
            f"see bench/results/sched-worker-*.log"
        ]
    started.sort()
    cpu = {k: (after[k] - before[k]) * 1000 / max(1, done) for k in before}
    cpu_text = (
        f"CPU a run: consumers {cpu['consumers']:.1f} ms, PostgreSQL backends "
        f"{cpu['postgres']:.1f} ms, Redis {cpu['redis']:.1f} ms (total {sum(cpu.values()):.1f} ms)"
    )
    log(f"  {cpu_text}; load average {os.getloadavg()[0]:.2f}")
    p50 = statistics.median(started)
    p99 = started[min(len(started) - 1, int(len(started) * 0.99))]
    log(
        f"  lateness over {len(started)} runs: p50 {p50:.2f} s, p99 {p99:.2f} s, "
        f"min {started[0]:.2f}, max {started[-1]:.2f}; statuses {statuses}"
    )
    rows = [
        Row(
            case=f"scheduler: start lateness p50 / p99, {DUE:,} due trivial jobs, {CONSUMERS} "
            "consumers on Redis",
            ours=f"{p50:.2f} / {p99:.2f}",
            target="p99 < 2 s",
            holds="yes" if p99 < 2 and len(started) == DUE else "NO",
        )
    ]
    notes = [
        f"Start lateness: {len(started):,} of {DUE:,} runs started (statuses {statuses}) on "
        f"{len(workers)} consumer processes; p50 {p50:.2f} s, p99 {p99:.2f} s, min "
        f"{started[0]:.2f} s, max {started[-1]:.2f} s. Each trivial run took a median "
        f"{statistics.median(durations) if durations else float('nan'):.0f} ms inside the runner "
        f"(tracker duration); the last started {started[-1]:.1f} s after the due time, i.e. "
        f"{len(started) / max(0.001, started[-1] - max(0.0, started[0])):.0f} runs/s over "
        f"{CONSUMERS} consumers. {cpu_text}, from 1 s before the due time to the last "
        f"run's end; load average at the end {os.getloadavg()[0]:.2f}."
    ]
    return rows, notes


def run(log: Callable[[str], None], quick: bool = False) -> tuple[list[Row], list[str]]:
    log("scheduler:")
    missing = [
        m
        for m in ("dancecat_core.scheduler", "dancecat_core.tasks")
        if importlib.util.find_spec(m) is None
    ]
    if missing:
        msg = (
            f"not run: {', '.join(missing)} not there yet (the case is wired and runs once "
            "they land)"
        )
        log("  " + msg)
        return [Row(case="scheduler (claim, lateness)", holds="not run")], [f"Scheduler: {msg}"]
    rows: list[Row] = []
    notes: list[str] = []
    for part in (claim_case, lambda lg: lateness_case(lg, quick)):
        try:
            r, n = part(log)
        except Exception as exc:
            log(f"  ERROR {type(exc).__name__}: {exc}")
            r, n = [Row(case="scheduler", holds="error")], [f"Scheduler error: {exc}"]
        rows += r
        notes += n
    return rows, notes

"""CPU a trivial run costs, in-process: what the start-lateness case is bound by.

``python bench/run_cpu.py [--runs N] [--rounds R]`` builds its own app database
(``dc_bench_runcpu`` on PostgreSQL), a SQLite connection on ``examples/chinook.sqlite`` and
N scheduled ``SELECT 1`` jobs, each with a Queued tracker due now; enqueues them on Redis
and runs every message the way a consumer's worker does (``huey.dequeue`` then
``huey.execute``), in this process. It prints, per run: this process's CPU
(``time.process_time``), the CPU of the PostgreSQL backends serving the database and of the
Redis server, and wall time. The first 20 runs warm up and are not counted.

It imports ``dancecat_core`` from ``sys.path``: run it with ``PYTHONPATH=<another tree>`` to
measure that tree in the same minutes (alternate the trees; the machine is shared).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "dc_bench_runcpu"
PG = os.environ.get("DC_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("DC_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
WARM_UP = 20


def _psql(sql: str) -> None:
    subprocess.run(
        ["psql", "-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c", sql],
        check=True,
    )


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _others_cpu(redis_conn) -> tuple[float, float]:
    """CPU so far of this database's PostgreSQL backends (the runs' pool; this snapshot's
    own connection, opened apart, excluded) and of the Redis server."""
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=DATABASE)
    try:
        cursor = conn.cursor()
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        pids = [row[0] for row in cursor.fetchall()]
    finally:
        conn.close()
    info = redis_conn.info("cpu")
    return (
        sum(_cpu_seconds(pid) for pid in pids),
        float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
    )


def _populate(runtime, count: int) -> list[int]:
    from sqlalchemy import insert, select

    from dancecat_core.models import Connection, Job, Schedule, Tracker

    now = dt.datetime.now(dt.UTC)
    with runtime.engine.begin() as conn:
        conn.execute(
            insert(Connection).values(
                name="cpu-sqlite",
                driver="sqlite",
                database=str(ROOT / "examples" / "chinook.sqlite"),
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
                for i in range(count)
            ],
        )
        conn.execute(
            insert(Schedule),
            [
                {
                    "job_id": 1 + i,
                    "type": "daily",
                    "start_local": now.replace(tzinfo=None),
                    "timezone": "UTC",
                    "catch_up": "once",
                    "active": False,
                    "next_run_at": None,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(count)
            ],
        )
        conn.execute(
            insert(Tracker),
            [
                {
                    "job_id": 1 + i,
                    "schedule_id": 1 + i,
                    "due_at": now,
                    "queued_at": now,
                    "status": "Queued",
                    "attempts": 0,
                }
                for i in range(count)
            ],
        )
        return list(conn.execute(select(Tracker.id).order_by(Tracker.id)).scalars())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--profile", type=int, metavar="N", help="cProfile the runs; print the top N functions"
    )
    args = parser.parse_args()

    import redis

    from dancecat_core import migrations, tasks
    from dancecat_core.runtime import build_runtime
    from dancecat_core.settings import load_settings

    home = tempfile.mkdtemp(prefix="dc-runcpu-")
    env = {
        "DANCECAT_HOME": home,
        "DANCECAT_DATABASE_URL": f"{PG}/{DATABASE}",
        "DANCECAT_REDIS_URL": REDIS_URL,
        "DANCECAT_HUEY_NAME": f"dc-bench-runcpu-{os.getpid()}",
        "DANCECAT_RESULT_STORE": "file",
        "DANCECAT_SQLITE_ALLOWED_DIRS": str(ROOT / "examples"),
    }
    redis_conn = redis.Redis.from_url(REDIS_URL)
    import dancecat_core

    print(f"tree: {Path(dancecat_core.__file__).parent.parent}", flush=True)
    for _ in range(args.rounds):
        _psql(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        _psql(f'CREATE DATABASE "{DATABASE}"')
        runtime = build_runtime(load_settings(environ=env))
        migrations.upgrade(runtime.engine)
        tasks.configure(runtime=runtime)
        tasks.huey.flush()
        import dancecat_core.provenance  # a consumer imports it when it starts

        ids = _populate(runtime, args.runs + WARM_UP)
        for tracker_id in ids:
            tasks.enqueue_run(tracker_id)
        huey = tasks.huey
        for _ in range(WARM_UP):
            huey.execute(huey.dequeue())
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        pg0, redis0 = _others_cpu(redis_conn)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        done = 0
        while True:
            task = huey.dequeue()
            if task is None:
                break
            huey.execute(task)
            done += 1
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        pg1, redis1 = _others_cpu(redis_conn)
        per = 1000 / max(1, done)
        print(
            f"runs {done}: consumer CPU {cpu * per:.2f} ms a run, PostgreSQL "
            f"{(pg1 - pg0) * per:.2f} ms, Redis {(redis1 - redis0) * per:.2f} ms, wall "
            f"{wall * per:.2f} ms; load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        if profiler:
            stats = pstats.Stats(profiler)
            stats.sort_stats("tottime").print_stats(args.profile)
            stats.sort_stats("cumulative").print_stats(args.profile)
        tasks.huey.flush()
        runtime.engine.dispose()
    sys.exit(0)


if __name__ == "__main__":
    main()

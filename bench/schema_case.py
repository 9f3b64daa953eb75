"""The schema browser on a catalogue of 10,000 tables (PostgreSQL).

- Floor: ``psql -At -c`` of the very catalogue query the PostgreSQL driver declares
  (``CATALOGUE.tables``), spawn to exit: what listing the same tables costs a client.
- First read: ``services.catalogues.refresh`` (connect as the connection's user, run the
  catalogue query through the driver, store 10,000 rows in the app database, read them
  back) and the JSON ``GET /schema`` answers with, committed.
- Cached read: ``services.catalogues.get`` and that JSON: what every later look pays.
- A table's columns: first (read from the database, stored) and cached.

Each repeat runs floor, first read, cached read in turn, so the machine's drift lands on
all of them. The data database (``dc_bench_schema``: 10,000 tables of 6 columns) is built
once and kept; the app database (``dc_bench_schema_app``, PostgreSQL) is rebuilt each run.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable

from bench import config, measure
from bench.report import Row

TABLES = 10_000
DATA_DB = "dc_bench_schema"
APP_DB = "dc_bench_schema_app"
FIRST_TARGET = 2.0  # first read ≤ 2x psql's listing
CACHED_TARGET = 1.0  # a cached read no slower than psql's listing


def _psql(database: str, sql: str) -> str:
    done = subprocess.run(
        [*config.psql_args(database), "-At", "-c", sql], capture_output=True, text=True
    )
    if done.returncode:
        raise measure.ChildFailed(f"psql: {done.stderr.strip()[-500:]}")
    return done.stdout


def ensure_tables(log: Callable[[str], None]) -> None:
    """``dc_bench_schema`` with exactly TABLES tables ``t_00001`` … (kept between runs)."""
    exists = _psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{DATA_DB}'")
    if not exists.strip():
        _psql("postgres", f"CREATE DATABASE {DATA_DB}")
    count = int(_psql(DATA_DB, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"))
    if count == TABLES:
        return
    log(f"  building {TABLES:,} tables in {DATA_DB} (once)")
    _psql(DATA_DB, "DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    for start in range(1, TABLES + 1, 1000):
        _psql(
            DATA_DB,
            f"""DO $$ BEGIN FOR i IN {start}..{min(start + 999, TABLES)} LOOP
                EXECUTE format('CREATE TABLE t_%s (id bigint PRIMARY KEY, name text,
                  amount numeric(12, 2), created_at timestamptz, api_token text,
                  note varchar(200))', lpad(i::text, 5, '0'));
            END LOOP; END $$""",
        )


def _runtime():
    from dancecat_core import migrations
    from dancecat_core.runtime import build_runtime
    from dancecat_core.settings import load_settings

    _psql("postgres", f"DROP DATABASE IF EXISTS {APP_DB} WITH (FORCE)")
    _psql("postgres", f"CREATE DATABASE {APP_DB}")
    home = config.RESULTS / "schema-home"
    home.mkdir(parents=True, exist_ok=True)
    settings = load_settings(
        environ={"DANCECAT_HOME": str(home), "DANCECAT_DATABASE_URL": config.pg_url(APP_DB)}
    )
    runtime = build_runtime(settings)
    migrations.upgrade(runtime.engine)
    return runtime


def run(log: Callable[[str], None], repeats: int = 5) -> tuple[list[Row], list[str]]:
    from dancecat_core.db import session_scope
    from dancecat_core.models import Connection
    from dancecat_core.services import catalogues
    from dancecat_plugins.postgresql_driver import CATALOGUE
    from dancecat_web.api.catalogues import catalogue_json

    ensure_tables(log)
    runtime = _runtime()
    with session_scope(runtime.session_factory) as session:
        connection = Connection(
            name="schema bench",
            driver="postgresql",
            host=config.PG_HOST,
            port=config.PG_PORT,
            database=DATA_DB,
            user_name=config.PG_USER,
        )
        session.add(connection)
        session.flush()
        connection_id = connection.id

    def timed(work: Callable[..., object]) -> tuple[float, object]:
        clock = time.perf_counter()
        with session_scope(runtime.session_factory) as session:
            answer = work(session)
        return time.perf_counter() - clock, answer

    def first(session) -> str:
        found = catalogues.refresh(runtime, session, None, connection_id)
        return json.dumps({"schema": catalogue_json(found)})

    def cached(session) -> str:
        return json.dumps(
            {"schema": catalogue_json(catalogues.get(runtime, session, None, connection_id))}
        )

    def columns(session) -> int:
        return len(catalogues.columns(runtime, session, None, connection_id, "public", "t_05000"))

    floor_args = [*config.psql_args(DATA_DB), "-At", "-c", CATALOGUE.tables]
    measure.command(floor_args)  # warm the page cache and the catalogue
    timed(first)
    floors, firsts, cacheds = [], [], []
    size = 0
    for repeat in range(repeats):
        floors.append(measure.command(floor_args).seconds)
        seconds, body = timed(first)
        firsts.append(seconds)
        seconds, body = timed(cached)
        cacheds.append(seconds)
        size = len(body)
        listed = len(json.loads(body)["schema"]["tables"])
        if listed != TABLES:
            raise measure.ChildFailed(f"the catalogue listed {listed:,} tables, not {TABLES:,}")
        log(
            f"  repeat {repeat + 1}/{repeats}: psql {floors[-1]:.3f} s, first read "
            f"{firsts[-1]:.3f} s, cached {cacheds[-1]:.3f} s"
        )
    column_first, count = timed(columns)
    column_cached, _ = timed(columns)
    floor = measure.median(floors)
    rows = []
    for name, times, target in (
        ("first read", firsts, FIRST_TARGET),
        ("cached read", cacheds, CACHED_TARGET),
    ):
        ours = measure.median(times)
        ratio = ours / floor
        rows.append(
            Row(
                case=f"schema browser, {TABLES:,} tables: {name} (floor: psql listing them)",
                floor=f"{floor:.3f}",
                ours=f"{ours:.3f}",
                ratio=f"{ratio:.1f}x",
                target=f"≤ {target:g}x",
                holds="yes" if ratio <= target else "NO",
            )
        )
    notes = [
        f"Schema browser: medians of {repeats} repeats (floor, first read, cached read in "
        f"turn); PostgreSQL app database; the answer is {size / 1024:.0f} KiB of JSON for "
        f"{TABLES:,} tables. One table's {count} columns: first {column_first * 1000:.0f} ms "
        f"(read and stored), then {column_cached * 1000:.0f} ms (cached)."
    ]
    runtime.engine.dispose()
    return rows, notes

"""Where the bench finds its servers and puts its files. Every value has an env override."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = Path(os.environ.get("DC_BENCH_RESULTS", BENCH / "results"))
PYTHON = sys.executable

PG_HOST = os.environ.get("DC_BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("DC_BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("DC_BENCH_PG_USER", "postgres")
MY_HOST = os.environ.get("DC_BENCH_MY_HOST", "127.0.0.1")
MY_PORT = int(os.environ.get("DC_BENCH_MY_PORT", "3306"))
MY_USER = os.environ.get("DC_BENCH_MY_USER", "root")
REDIS_URL = os.environ.get("DC_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

DATA_DB = "dc_bench"  # the queried data, in both PostgreSQL and MariaDB
APP_DB = "dc_bench_app"  # DanceCat's own app database for the pipeline cases
SCHED_DB = "dc_bench_sched"  # app database for the scheduler case
WEB_DB = "dc_bench_web"  # app database for the web case
# `dancecat serve --processes` in the web case: every core, as with REDIS_URL.
WEB_PROCESSES = int(os.environ.get("DC_BENCH_WEB_PROCESSES", len(os.sched_getaffinity(0))))


def pg_url(database: str) -> str:
    return f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


def psql_args(database: str) -> list[str]:
    return [
        "psql",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        PG_HOST,
        "-p",
        str(PG_PORT),
        "-U",
        PG_USER,
        "-d",
        database,
    ]


def mariadb_args(database: str | None = None) -> list[str]:
    args = ["mariadb", "-h", MY_HOST, "-P", str(MY_PORT), "-u", MY_USER]
    return args + ([database] if database else [])

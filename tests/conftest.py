"""Fixtures for the real services on this machine, one per service.

PostgreSQL, MariaDB and Redis are used for real. Locally a missing service skips the tests
that need it; with ``CI=true`` it fails them, so a green CI always means they ran.
Every database a test run creates has a name unique to that run, so parallel runs (and
several developers on one machine) never collide.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dancecat_core import migrations
from dancecat_core.runtime import Runtime, build_runtime
from dancecat_core.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
CHINOOK_DIR = ROOT / "tests" / "data" / "chinook"
CHINOOK_SQLITE = ROOT / "examples" / "chinook.sqlite"
IN_CI = os.environ.get("CI", "").lower() == "true"

PG_HOST = os.environ.get("DANCECAT_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("DANCECAT_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("DANCECAT_TEST_PG_USER", "postgres")
MY_HOST = os.environ.get("DANCECAT_TEST_MYSQL_HOST", "127.0.0.1")
MY_PORT = int(os.environ.get("DANCECAT_TEST_MYSQL_PORT", "3306"))
MY_USER = os.environ.get("DANCECAT_TEST_MYSQL_USER", "root")
REDIS_URL = os.environ.get("DANCECAT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def unique_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def service_missing(what: str, why: str) -> None:
    """Fail under CI, skip elsewhere: a missing service is never a silent pass in CI."""
    message = f"{what} is not reachable: {why}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _psql(*args: str, database: str = "test", stdin: str | None = None) -> None:
    subprocess.run(
        [
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
            *args,
        ],
        input=stdin,
        text=True,
        check=True,
        capture_output=True,
    )


def _mariadb(*args: str, stdin: str | None = None) -> None:
    subprocess.run(
        ["mariadb", "-h", MY_HOST, "-P", str(MY_PORT), "-u", MY_USER, *args],
        input=stdin,
        text=True,
        check=True,
        capture_output=True,
    )


def _chinook_script(name: str, drop_prefixes: tuple[str, ...]) -> str:
    """A bundled Chinook creation script without its own CREATE DATABASE / switch lines."""
    with gzip.open(CHINOOK_DIR / f"{name}.gz", "rt", encoding="utf-8") as script:
        lines = script.read().splitlines()
    return "\n".join(line for line in lines if not line.startswith(drop_prefixes))


@pytest.fixture(scope="session")
def pg_server() -> dict:
    """Connection facts for the local PostgreSQL; fails in CI when it is down."""
    if shutil.which("psql") is None:
        service_missing("PostgreSQL", "psql is not installed")
    try:
        _psql("-c", "SELECT 1")
    except subprocess.CalledProcessError as exc:
        service_missing("PostgreSQL", exc.stderr.strip())
    return {"host": PG_HOST, "port": PG_PORT, "user": PG_USER}


@pytest.fixture(scope="session")
def mysql_server() -> dict:
    """Connection facts for the local MariaDB; fails in CI when it is down."""
    if shutil.which("mariadb") is None:
        service_missing("MariaDB", "the mariadb client is not installed")
    try:
        _mariadb("-e", "SELECT 1")
    except subprocess.CalledProcessError as exc:
        service_missing("MariaDB", exc.stderr.strip())
    return {"host": MY_HOST, "port": MY_PORT, "user": MY_USER}


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        service_missing("Redis", str(exc))
    return REDIS_URL


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    """moto's S3-compatible server (``destination_peers.MotoServer``), one per test run,
    for the S3 destination and the S3 result store; each test makes its own bucket."""
    from destination_peers import MotoServer

    server = MotoServer(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_chinook(pg_server: dict) -> Iterator[dict]:
    """A fresh PostgreSQL database holding Chinook, dropped after the run."""
    name = unique_name("dc_chinook")
    _psql("-c", f'CREATE DATABASE "{name}"')
    _psql(
        database=name,
        stdin=_chinook_script(
            "Chinook_PostgreSql.sql", ("DROP DATABASE", "CREATE DATABASE", "\\c ")
        ),
    )
    yield {**pg_server, "database": name}
    _psql("-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def mysql_chinook(mysql_server: dict) -> Iterator[dict]:
    """A fresh MariaDB database holding Chinook, dropped after the run."""
    name = unique_name("dc_chinook")
    _mariadb("-e", f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    _mariadb(
        name,
        stdin=_chinook_script("Chinook_MySql.sql", ("DROP DATABASE", "CREATE DATABASE", "USE ")),
    )
    yield {**mysql_server, "database": name}
    _mariadb("-e", f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def pg_database(pg_server: dict) -> Iterator[dict]:
    """An empty PostgreSQL database for one test."""
    name = unique_name("dc_test")
    _psql("-c", f'CREATE DATABASE "{name}"')
    yield {
        **pg_server,
        "database": name,
        "url": f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}",
    }
    _psql("-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def mysql_database(mysql_server: dict) -> Iterator[dict]:
    """An empty MariaDB database for one test."""
    name = unique_name("dc_test")
    _mariadb("-e", f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    yield {
        **mysql_server,
        "database": name,
        "url": f"mysql+pymysql://{MY_USER}@{MY_HOST}:{MY_PORT}/{name}",
    }
    _mariadb("-e", f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def sqlite_chinook(tmp_path: Path) -> Path:
    """A private copy of the bundled Chinook SQLite database."""
    target = tmp_path / "chinook.sqlite"
    shutil.copyfile(CHINOOK_SQLITE, target)
    return target


@pytest.fixture
def settings(tmp_path: Path):
    """Embedded-default settings under a private DANCECAT_HOME; SQLite connections may
    open files in the test's own folder (the home inside it stays refused)."""
    return load_settings(
        environ={
            "DANCECAT_HOME": str(tmp_path / "home"),
            "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
        }
    )


@pytest.fixture
def runtime(settings) -> Iterator[Runtime]:
    """A runtime on a migrated SQLite app database with every built-in plugin."""
    rt = build_runtime(settings)
    migrations.upgrade(rt.engine)
    yield rt
    rt.engine.dispose()


@pytest.fixture
def pg_runtime(tmp_path: Path, pg_database: dict) -> Iterator[Runtime]:
    """``runtime`` on a migrated PostgreSQL app database of its own."""
    rt = build_runtime(
        load_settings(
            environ={
                "DANCECAT_HOME": str(tmp_path / "home"),
                "DANCECAT_DATABASE_URL": pg_database["url"],
                "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
            }
        )
    )
    migrations.upgrade(rt.engine)
    yield rt
    rt.engine.dispose()


# The API tests' cast: a WebTest app on ``runtime`` (``queued`` collects the runs it puts on
# the queue), alice with a token, and her connection to the Chinook copy. A module that
# needs another app or user defines its own fixture of the same name.


@pytest.fixture
def queued() -> list[int]:
    return []


@pytest.fixture
def app(runtime: Runtime, queued: list[int]):
    from test_web_helpers import make_app

    return make_app(runtime, queued)


@pytest.fixture
def alice(runtime: Runtime):
    from test_web_helpers import make_user

    return make_user(runtime, "alice@example.com")


@pytest.fixture
def csrf(app, alice) -> str:
    """Alice signed in through the form like a browser: her session's CSRF token."""
    from test_web_helpers import sign_in

    return sign_in(app, alice.email)


@pytest.fixture
def connection(app, alice, sqlite_chinook: Path) -> dict:
    body = {"name": "chinook", "driver": "sqlite", "database": str(sqlite_chinook)}
    return app.post_json("/api/v1/connections", body, headers=alice.auth).json["connection"]

"""Engines and sessions for the app database (its migrations: ``dancecat_core.migrations``)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from dancecat_core.private_files import make_private_file

log = logging.getLogger(__name__)

# Connections a process keeps open to a PostgreSQL or MariaDB app database, at most. A
# connection is opened when first needed and then kept: with SQLAlchemy's default (5 kept,
# 10 more opened and closed as needed) a web process's 8 request threads opened and closed
# about two connections a second under load, each a new server process and its statements
# prepared again.
POOL_SIZE = 15

# How long a status change waits for the app database to come back before giving up
# (a PostgreSQL restart takes seconds; a failover, tens of seconds).
APP_DB_PATIENCE_SECONDS = 120


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL lets the web app read while a worker writes; busy_timeout waits out short locks."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def sqlite_app_file(database_url: str) -> Path | None:
    """The file of a SQLite app database URL, or None (another backend, or in memory)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).absolute()


def get_engine(database_url: str, **kwargs) -> Engine:
    """An engine for the app database with settings fit for each backend."""
    if database_url.startswith("sqlite"):
        path = sqlite_app_file(database_url)
        if path is not None:
            make_private_file(path)  # 0600 before SQLite creates it (and its -wal) 0644
        engine = create_engine(database_url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if database_url.startswith("mysql") and "charset=" not in database_url:
        database_url += ("&" if "?" in database_url else "?") + "charset=utf8mb4"
    kwargs.setdefault("pool_size", POOL_SIZE)
    kwargs.setdefault("max_overflow", 0)
    engine = create_engine(database_url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine)
    if engine.dialect.name == "postgresql":
        event.listen(engine, "checkin", _transactions_again)
    return engine


def each_statement_commits(conn: Connection) -> None:
    """Make every statement on ``conn`` commit on its own (PostgreSQL: psycopg2's autocommit,
    set and cleared client-side) until it goes back to the pool; elsewhere nothing changes.

    psycopg2 sends BEGIN as a round trip of its own before a transaction's first statement
    and COMMIT or ROLLBACK after its last; without a transaction it sends neither, and
    statements may run from plans the connection keeps (``prepared``). For work that is
    one compare-and-set and reads (a run's claim and finish), and for requests that only
    read: under READ COMMITTED each statement of a transaction reads a snapshot of its own
    anyway. (SQLAlchemy's isolation_level option would reset the connection on its return
    with a round trip of its own, SET default_transaction_isolation.)
    """
    if conn.dialect.name == "postgresql":
        conn.connection.dbapi_connection.autocommit = True  # type: ignore[union-attr]


def _transactions_again(dbapi_connection: Any, _record: Any) -> None:
    """A connection goes back to the pool with transactions on (``each_statement_commits``).
    An invalidated one (the database went away) comes back as None: nothing to reset."""
    if dbapi_connection is None:
        return
    if dbapi_connection.autocommit and not dbapi_connection.closed:
        dbapi_connection.autocommit = False


# A pooled connection that sat unused longer than this is pinged before use. Pinging at
# every checkout (``pool_pre_ping``) cost a round trip per transaction, a third of a
# trivial run's; a connection used a moment ago is alive (or its first statement fails,
# SQLAlchemy invalidates the whole pool, and ``with_app_db`` retries).
IDLE_PING_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """``pool_pre_ping``, but only for connections idle over ``IDLE_PING_SECONDS``."""

    @event.listens_for(engine, "checkin")
    def note_checkin(dbapi_connection, record) -> None:
        if record is not None:
            record.info["dancecat_used"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping_if_idle(dbapi_connection, record, proxy) -> None:
        used = record.info.get("dancecat_used")
        if used is None or time.monotonic() - used < IDLE_PING_SECONDS:
            return  # fresh from connect, or used a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool throws the connection away and checks out a new one.
            raise DisconnectionError(f"the pooled connection is dead: {exc}") from exc
        if alive is False:
            raise DisconnectionError("the pooled connection is dead")


def get_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextlib.contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session committed on success and rolled back on any error (worker and console)."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def app_db_unavailable(exc: BaseException) -> bool:
    """True for the app database being unreachable (restart, failover, network), as
    opposed to a bug in a statement: these are worth waiting out."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError)


def with_app_db(what: str, fn: Callable[[], Any], patience: float | None = None) -> Any:
    """Call ``fn`` (one short app-database transaction), retrying while the database is
    unreachable, for up to ``APP_DB_PATIENCE_SECONDS``. ``fn`` must be safe to repeat."""
    deadline = time.monotonic() + (APP_DB_PATIENCE_SECONDS if patience is None else patience)
    delay = 0.25
    while True:
        try:
            return fn()
        except DBAPIError as exc:
            if not app_db_unavailable(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning(
                "%s: the app database is unavailable (%s); retrying in %.1f s",
                what,
                type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__,
                delay,
            )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

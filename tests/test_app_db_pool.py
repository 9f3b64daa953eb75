"""The app database's connection pool (``dancecat_core.db.get_engine``): connections a busy
moment opened are kept for the next one, not closed as it ends. Closing them cost a
PostgreSQL server process each time, and the statements the connection had prepared."""

from __future__ import annotations

import threading

from sqlalchemy import text

from dancecat_core import db


def _backends(engine, database: str) -> set[int]:
    with engine.connect() as conn:
        return set(
            conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": database}
            ).scalars()
        )


def test_connections_opened_under_load_are_kept(pg_database):
    engine = db.get_engine(pg_database["url"])
    busy = 12  # more than SQLAlchemy's default pool of 5, fewer than POOL_SIZE
    assert busy < db.POOL_SIZE
    everyone_in = threading.Barrier(busy)

    def request() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            everyone_in.wait(timeout=30)  # all of them out of the pool at once

    try:
        for moment in range(2):  # two busy moments: the second opens nothing new
            threads = [threading.Thread(target=request) for _ in range(busy)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if moment == 0:
                first = _backends(engine, pg_database["database"])
        assert engine.pool.checkedin() == busy
        assert _backends(engine, pg_database["database"]) == first
        assert len(first) == busy
    finally:
        engine.dispose()

"""Named locks held until the end of a transaction, the same way on every app database.

``hold(session, name)`` updates the lock's row in ``app_locks``: PostgreSQL and MariaDB
lock that row until the transaction ends, and SQLite takes its database write lock, so
whoever takes the same lock next waits (up to the database's lock timeout) for the first
to commit or roll back. Reads made after ``hold`` that decide what to write must see the
latest commit: on PostgreSQL (read committed) and SQLite (the write lock starts a fresh
snapshot) plain reads do; MariaDB's repeatable read keeps the transaction's first
snapshot, so read with ``with_for_update(read=True)`` there (a no-op elsewhere).
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from dancecat_core.errors import ConfigError
from dancecat_core.models.locks import AppLock
from dancecat_core.models.meta import utcnow

# Saving a job's "run after": the cycle check and the save happen under it.
JOB_CHAINS = "job_chains"


def hold(session: Session, name: str) -> None:
    """Take the lock ``name`` for the rest of ``session``'s transaction."""
    taken = session.execute(
        update(AppLock)
        .where(AppLock.name == name)
        .values(taken_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:
        raise ConfigError(
            f"the app database has no lock {name!r}: run `dancecat init` (it upgrades it)"
        )

"""``request.dbsession``: one SQLAlchemy session per request, joined to its transaction.

The cookiecutter's ``get_tm_session`` pattern: pyramid_tm commits when the view returns
and aborts when it raises, so a view never commits by hand, and work scheduled with
``request.tm.get().addAfterCommitHook`` runs only once the data is really there. The
busiest read-only screens (``READS_ONLY``) run their statements without a transaction.
"""

from __future__ import annotations

import transaction
import zope.sqlalchemy
from pyramid.config import Configurator
from pyramid.request import Request
from sqlalchemy.orm import Session, sessionmaker

from dancecat_core.db import each_statement_commits


def get_tm_session(
    session_factory: sessionmaker[Session], transaction_manager: transaction.TransactionManager
) -> Session:
    """A session whose commit and rollback belong to ``transaction_manager``."""
    session = session_factory()
    zope.sqlalchemy.register(session, transaction_manager=transaction_manager)
    return session


# Screens whose GET only reads: their statements each commit alone (PostgreSQL,
# ``db.each_statement_commits``), so the Jobs screen's reads run from plans the connection
# keeps (``jobs_screen``) and no BEGIN and ROLLBACK go with them. The runs API gained
# nothing from that alone (bench, 2026-12-04: within the noise), so it keeps its transaction.
READS_ONLY = frozenset({"ui.jobs"})


def _dbsession(request: Request) -> Session:
    # Tests may hand in a session of their own through the environ (warehouse's pattern).
    session = request.environ.get("app.dbsession")
    if session is None:
        session = get_tm_session(request.runtime.session_factory, request.tm)
        route = request.matched_route
        if request.method in ("GET", "HEAD") and route is not None and route.name in READS_ONLY:
            each_statement_commits(session.connection())
    return session


def includeme(config: Configurator) -> None:
    config.include("pyramid_tm")
    config.add_request_method(_dbsession, "dbsession", reify=True)

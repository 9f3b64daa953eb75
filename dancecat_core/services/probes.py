"""Touching a queried database without saving anything: the job form's Run button (a
query's first rows, scrubbed) and the connection form's Test button (connect and ping).

Apart from ``jobs`` and ``connections`` because only these need the runner, the drivers
and the scrubbing: listing, adding or changing jobs and connections imports none of them
(the console's start-up).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from dancecat_core import parameters
from dancecat_core.drivers import BoundQuery
from dancecat_core.errors import Conflict, ValidationError
from dancecat_core.inputs.connection import ConnectionInput
from dancecat_core.inputs.fields import Problems
from dancecat_core.inputs.job import PREVIEW_FIELDS, JobInput
from dancecat_core.inputs.run import RunInput
from dancecat_core.models import Connection, User, utcnow
from dancecat_core.run_dates import Occasion
from dancecat_core.runner import Preview, check_connection, preview_query
from dancecat_core.runtime import Runtime
from dancecat_core.services import access, connections, jobs


def preview_saved(
    runtime: Runtime,
    session: Session,
    actor: User | None,
    job_id: int,
    run: RunInput | None = None,
) -> Preview:
    """Preview a saved job as it would run (with ``run``'s parameter values): anyone who
    may run the job may preview it, through the job's own connection even if that
    connection is not shared with them."""
    job = jobs.get(session, actor, job_id)
    if job.connection.is_deleted:
        raise Conflict("the job's connection was deleted; choose another connection first")
    bound = _bound(
        runtime, job.query, parameters.load(job.parameters_json), run, job.connection.driver
    )
    return preview_query(
        runtime, runtime.connection_params(job.connection), bound, timeout=job.timeout_seconds
    )


def _bound(
    runtime: Runtime, sql: str, declared: Any, run: RunInput | None, driver: str
) -> BoundQuery:
    """The text a preview runs: values given, else defaults, else the built-in dates of
    now in the server's zone, as a manual run would have them."""
    given = (run or RunInput()).cleaned()["parameters"]
    occasion = Occasion(utcnow(), runtime.settings.timezone)
    return parameters.bind(sql, declared, given, occasion, driver)[0]


def preview(
    runtime: Runtime,
    session: Session,
    actor: User | None,
    *,
    connection_id: Any,
    query: str,
    timeout_seconds: Any = None,
    declared: Any = (),
    run: RunInput | None = None,
) -> Preview:
    """The form's Run button: first QUERY_TEST_LIMIT rows, scrubbed, nothing saved."""
    data = JobInput(
        connection_id=connection_id,
        query=query,
        timeout_seconds=timeout_seconds,
        parameters=declared,
    )
    problems = Problems()
    values = data.cleaned(problems=problems, only=PREVIEW_FIELDS)
    connection = None
    if values.get("connection_id") is not None:
        try:
            connection = jobs.usable_connection(session, actor, values["connection_id"])
        except ValidationError as error:
            problems.add(error)
    problems.raise_any()
    assert connection is not None  # connection_id is required, so a problem was raised
    bound = _bound(runtime, values["query"], values["parameters"], run, connection.driver)
    return preview_query(
        runtime,
        runtime.connection_params(connection),
        bound,
        timeout=values["timeout_seconds"],
    )


def check(runtime: Runtime, connection: Connection) -> tuple[bool, str | None, int]:
    """Connect and ping: (ok, scrubbed error or None, elapsed ms)."""
    return check_connection(runtime, runtime.connection_params(connection))


def check_unsaved(
    runtime: Runtime,
    session: Session,
    actor: User | None,
    data: ConnectionInput,
    connection_id: int | None = None,
) -> tuple[bool, str | None, int]:
    """Test a connection form's values without saving; an empty password keeps the old one,
    but only while the target is the saved one (``connections.TARGET_FIELDS``)."""
    values = connections.checked(runtime, actor, data)
    password = values.pop("password")
    probe = Connection(**values)
    if connection_id is not None:
        old = access.require_changeable(actor, session.get(Connection, connection_id), "connection")
        probe.password_encrypted = connections.stored_password_for(runtime, old, values, password)
    connections.set_password(runtime, probe, password)
    return check(runtime, probe)

"""The app database: migrations on all three backends, tracker transitions, secrets at rest."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from dancecat_core import db, migrations
from dancecat_core.errors import IllegalTransition
from dancecat_core.models import Tracker, TrackerStatus, check_transition
from dancecat_core.services import connections
from dancecat_core.services.connections import ConnectionInput

TABLES = {
    "users",
    "allowed_emails",
    "api_tokens",
    "connections",
    "jobs",
    "job_recipients",
    "schedules",
    "trackers",
    "notifications",
    "result_chunks",
}


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def app_database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.sqlite'}"
    return request.getfixturevalue(
        "pg_database" if request.param == "postgresql" else "mysql_database"
    )["url"]


def test_migrations_run_twice_on_every_backend(app_database_url):
    engine = db.get_engine(app_database_url)
    try:
        migrations.upgrade(engine)
        migrations.upgrade(engine)  # idempotent
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("Queued", "Running"),
        ("Queued", "Died in Queue"),
        ("Queued", "Failed"),
        ("Running", "Success"),
        ("Running", "Failed"),
        ("Running", "Queued"),  # handed back by a worker shutting down
        ("Success", "Result Expired"),
    ],
)
def test_legal_transitions(current, target):
    check_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("Success", "Running"),
        ("Failed", "Running"),
        ("Failed", "Queued"),
        ("Success", "Queued"),
        ("Died in Queue", "Running"),
        ("Result Expired", "Success"),
        ("Queued", "Success"),
    ],
)
def test_illegal_transitions_raise(current, target):
    tracker = Tracker(status=current)
    with pytest.raises(IllegalTransition, match=f"from {current} to {target}"):
        tracker.move_to(TrackerStatus(target))
    assert tracker.status == current


def test_connection_password_is_never_stored_in_clear(runtime):
    with runtime.session_factory() as session:
        connection = connections.create(
            runtime,
            session,
            None,
            ConnectionInput(
                name="warehouse",
                driver="postgresql",
                host="db.example",
                database="dw",
                user="report",
                password="correct horse battery staple",
            ),
        )
        session.commit()
        raw = session.execute(text("SELECT * FROM connections")).mappings().one()
    assert "correct horse" not in repr(dict(raw))
    assert runtime.connection_params(connection).password == "correct horse battery staple"
    assert "correct horse" not in repr(runtime.connection_params(connection))


def test_file_databases_inside_dancecat_home_are_refused(runtime):
    from dancecat_core.errors import ValidationError

    app_db = runtime.settings.home / "dancecat.sqlite"
    for path in (
        str(app_db),
        str(runtime.settings.home / "results" / "x"),
        f"file:{app_db}?mode=ro",
    ):
        with runtime.session_factory() as session, pytest.raises(ValidationError) as info:
            connections.create(
                runtime, session, None, ConnectionInput(name="own", driver="sqlite", database=path)
            )
        assert info.value.field == "database"
        assert "DANCECAT_HOME" in str(info.value)

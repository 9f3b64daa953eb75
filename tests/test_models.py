"""The app database: migrations on all three backends, tracker transitions, secrets at rest."""

from __future__ import annotations

import pytest
from alembic import command
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


def test_migration_0003_moves_accounts_over_and_back(app_database_url):
    """From 0002 with a registered user (mid-lockout) and an invited email: 0003 keeps the
    user, drops the per-user failure columns and gives the invited email its user row
    (without a password); downgrading restores the old columns."""
    engine = db.get_engine(app_database_url)
    config = migrations.alembic_config(engine.url.render_as_string(hide_password=False))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0002")
            connection.execute(
                text(
                    "INSERT INTO allowed_emails (email, is_admin, created_at) VALUES "
                    "('old@example.com', :yes, :at), ('invited@example.com', :no, :at)"
                ),
                {"yes": True, "no": False, "at": "2026-01-01 00:00:00"},
            )
            connection.execute(
                text(
                    "INSERT INTO users (email, password_hash, is_admin, created_at, "
                    "failed_logins, locked_until) VALUES "
                    "('old@example.com', 'h', :yes, :at, 3, :at)"
                ),
                {"yes": True, "at": "2026-01-01 00:00:00"},
            )
        migrations.upgrade(engine)
        columns = {c["name"] for c in inspect(engine).get_columns("users")}
        assert {"session_generation", "disabled_at"} <= columns
        assert not {"failed_logins", "locked_until"} & columns
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT email, password_hash, is_admin, session_generation, disabled_at "
                    "FROM users ORDER BY email"
                )
            ).all()
        assert [tuple(row) for row in rows] == [
            ("invited@example.com", None, False, 0, None),
            ("old@example.com", "h", True, 0, None),
        ]
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0002")
        columns = {c["name"] for c in inspect(engine).get_columns("users")}
        assert {"failed_logins", "locked_until"} <= columns and "disabled_at" not in columns
        assert "sign_in_throttles" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()

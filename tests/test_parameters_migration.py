"""Migration 0006 adds the parameter columns on every app-database backend, and back."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect

from dancecat_core import db, migrations

COLUMNS = {
    "jobs": "parameters_json",
    "schedules": "parameter_values_json",
    "trackers": "parameter_values_json",
}


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def app_database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.sqlite'}"
    return request.getfixturevalue(
        "pg_database" if request.param == "postgresql" else "mysql_database"
    )["url"]


def columns(engine) -> dict[str, set[str]]:
    found = inspect(engine)
    return {table: {c["name"] for c in found.get_columns(table)} for table in COLUMNS}


def test_migration_0006_adds_and_removes_the_parameter_columns(app_database_url):
    engine = db.get_engine(app_database_url)
    config = migrations.alembic_config(engine.url.render_as_string(hide_password=False))
    try:
        migrations.upgrade(engine)
        assert all(COLUMNS[t] in names for t, names in columns(engine).items())
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0005")
        assert not any(COLUMNS[t] in names for t, names in columns(engine).items())
        migrations.upgrade(engine)
        assert all(COLUMNS[t] in names for t, names in columns(engine).items())
    finally:
        engine.dispose()

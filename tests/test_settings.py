"""Settings: defaults, INI, environment precedence, one-line errors, generated secrets."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest

from dancecat_core.errors import ConfigError
from dancecat_core.settings import load_settings


def test_embedded_defaults_live_under_home(tmp_path):
    settings = load_settings(environ={"DANCECAT_HOME": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'dancecat.sqlite'}"
    assert settings.result_dir == tmp_path / "results"
    assert settings.huey_file == tmp_path / "huey.sqlite"
    assert (settings.query_test_limit, settings.job_result_valid_seconds) == (100, 86400)
    assert (settings.frequency_interval_seconds, settings.db_timeout) == (60, 120)
    assert settings.job_worker_execute_timeout == 3600
    assert settings.job_worker_enqueue_timeout == 1800
    assert settings.embedded


def test_secrets_are_generated_once_with_mode_0600(tmp_path):
    first = load_settings(environ={"DANCECAT_HOME": str(tmp_path)})
    second = load_settings(environ={"DANCECAT_HOME": str(tmp_path)})
    assert first.secret_key == second.secret_key
    assert first.encryption_keys == second.encryption_keys
    for name in ("secret_key", "encryption_keys"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def test_environment_wins_over_ini(tmp_path):
    ini = tmp_path / "dancecat.ini"
    ini.write_text(
        "[app:main]\nuse = egg:dancecat\nquery_test_limit = 7\n"
        "dancecat.db_timeout = 9\nJOB_RESULT_VALID_SECONDS = 11\nhome = %(here)s/h\n"
    )
    settings = load_settings(
        ini, environ={"DANCECAT_QUERY_TEST_LIMIT": "5", "DANCECAT_HOME": str(tmp_path / "e")}
    )
    assert settings.query_test_limit == 5
    assert settings.db_timeout == 9
    assert settings.job_result_valid_seconds == 11
    assert settings.home == tmp_path / "e"


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("QUERY_TEST_LIMIT", "many", "QUERY_TEST_LIMIT"),
        ("DB_TIMEOUT", "-1", "positive"),
        ("TIMEZONE", "Mars/Olympus", "IANA"),
        ("SMTP_SECURITY", "tls13", "none, starttls, ssl"),
        ("DATABASE_URL", "dancecat.sqlite", "URL"),
        ("ENCRYPTION_KEYS", "not-a-key", "ENCRYPTION_KEYS"),
    ],
)
def test_malformed_setting_names_the_key(tmp_path, key, value, says):
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"DANCECAT_HOME": str(tmp_path), f"DANCECAT_{key}": value})
    assert key in str(info.value)
    assert says in str(info.value)
    assert "\n" not in str(info.value)


def test_console_reports_bad_setting_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "dancecat_core.console", "job", "list"],
        env={"DANCECAT_HOME": str(tmp_path), "DANCECAT_DB_TIMEOUT": "soon", "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: setting DB_TIMEOUT: 'soon' must be a whole number"
    ]

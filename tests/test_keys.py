"""Credentials at rest: rotate-key re-encrypts every password, running processes keep going."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import text

from dancecat_core.runtime import build_runtime
from dancecat_core.services import connections
from dancecat_core.settings import load_settings


def dancecat(home, *args, stdin=None):
    env = {**os.environ, "DANCECAT_HOME": str(home)}
    env.pop("DANCECAT_ENCRYPTION_KEYS", None)
    return subprocess.run(
        [sys.executable, "-m", "dancecat_core.console", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_rotate_key_reencrypts_and_running_processes_keep_working(tmp_path):
    home = tmp_path / "home"
    assert dancecat(home, "init").returncode == 0
    added = dancecat(
        home,
        "connection",
        "add",
        "pg",
        "--driver",
        "postgresql",
        "--host",
        "db.internal",
        "--database",
        "dw",
        "--user",
        "bob",
        "--password-stdin",
        stdin="s3cret-Passw0rd\n",
    )
    assert added.returncode == 0, added.stderr
    # A "running process": its runtime holds only the old key.
    running = build_runtime(load_settings(environ={"DANCECAT_HOME": str(home)}))
    with running.session_factory() as session:
        before = session.execute(text("SELECT password_encrypted FROM connections")).scalar()

    rotated = dancecat(home, "rotate-key")
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted 1 connection password(s) and the secrets of 0 dest" in rotated.stdout
    assert len((home / "encryption_keys").read_text().split()) == 2

    with running.session_factory() as session:
        after = session.execute(text("SELECT password_encrypted FROM connections")).scalar()
        assert after != before
        assert "s3cret" not in after
        connection = connections.get_by_name(session, None, "pg")
        # Decrypts under the new key after re-reading the key file: no restart needed.
        assert running.connection_params(connection).password == "s3cret-Passw0rd"
    running.engine.dispose()

    fresh = build_runtime(load_settings(environ={"DANCECAT_HOME": str(home)}))
    with fresh.session_factory() as session:
        connection = connections.get_by_name(session, None, "pg")
        assert fresh.connection_params(connection).password == "s3cret-Passw0rd"
    fresh.engine.dispose()

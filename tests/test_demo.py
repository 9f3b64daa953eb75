"""``scripts/demo`` end to end: a teammate who signs up afterwards sees its connection and
job (they are shared), and its result files exist."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from test_web_helpers import PASSWORD, ROOT

from dancecat_core.db import session_scope
from dancecat_core.runtime import build_runtime
from dancecat_core.services import accounts, connections, jobs
from dancecat_core.settings import load_settings


def test_demo_objects_are_shared_with_a_teammate_who_signs_up(tmp_path: Path):
    home = tmp_path / "home"
    environ = {**os.environ, "DANCECAT_HOME": str(home)}
    environ.pop("DANCECAT_CONFIG", None)
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo")],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (ROOT / "out" / "top_customers.csv").read_text(encoding="utf-8").strip()
    runtime = build_runtime(load_settings(environ={"DANCECAT_HOME": str(home)}))
    with session_scope(runtime.session_factory) as session:
        accounts.allow_email(session, "teammate@example.com")
        teammate = accounts.sign_in(
            session, runtime.settings, "teammate@example.com", PASSWORD, PASSWORD
        )
        assert [c.name for c in connections.list_visible(session, teammate)] == ["chinook"]
        assert [j.name for j in jobs.list_visible(session, teammate)] == ["Top customers"]

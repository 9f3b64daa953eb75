"""schemathesis against a live ``dancecat serve``, driven by ``/api/v1/openapi.json``.

Every check runs except ``positive_data_acceptance``: the document states types, lengths
and ranges, but some refusals are business rules no schema can state (a connection id
must be one you may use, a PostgreSQL connection needs a host, a ``once`` schedule must
start in the future), so a schema-valid body may rightly get a 422.

The run prints how many requests it made (``-s`` shows it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from test_web_helpers import ROOT, dancecat, first_token, serve

CHECKS_EXCLUDED = "positive_data_acceptance"
MAX_EXAMPLES = int(os.environ.get("DANCECAT_FUZZ_EXAMPLES", "30"))


@pytest.fixture
def live(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    dancecat(home, "init")
    dancecat(home, "add-allowed-user", "fuzz@example.com")
    # Unreachable hosts the fuzzer invents should fail fast, not hold a thread for 10 s.
    yield from serve(home, env={"DANCECAT_CONNECT_TIMEOUT": "2", "DANCECAT_DB_TIMEOUT": "5"})


def _seed(live, token: str, chinook: Path) -> None:
    """A connection, a job and a finished run, so ids the fuzzer guesses find something."""
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    connection = api.post(
        live.api("/connections"),
        json={"name": "chinook", "driver": "sqlite", "database": str(chinook)},
        timeout=10,
    ).json()["connection"]
    job = api.post(
        live.api("/jobs"),
        json={
            "name": "tracks",
            "connection_id": connection["id"],
            "query": "SELECT TrackId, Name, UnitPrice FROM Track LIMIT 50",
        },
        timeout=10,
    ).json()["job"]
    api.post(live.api(f"/jobs/{job['id']}/runs"), timeout=10).raise_for_status()


def test_schemathesis_finds_no_server_errors_or_nonconforming_answers(live, tmp_path):
    token = first_token(live, "fuzz@example.com")
    chinook = tmp_path / "chinook.sqlite"
    shutil.copyfile(ROOT / "examples" / "chinook.sqlite", chinook)
    _seed(live, token, chinook)
    har = tmp_path / "fuzz.har"
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            live.api("/openapi.json"),
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            "all",
            "--exclude-checks",
            CHECKS_EXCLUDED,
            "--max-examples",
            str(MAX_EXAMPLES),
            # One worker: CPython 3.11's ast.parse is not thread-safe and hypothesis
            # calls it while describing strategies ("AST constructor recursion depth").
            "--workers",
            "1",
            "--seed",
            "20241125",
            # JSON text is Unicode: lone surrogates and NULs are refused by design (422).
            "--generation-codec",
            "utf-8",
            "--generation-allow-x00",
            "false",
            "--generation-database",
            "none",
            "--no-color",
            "--report",
            "har",
            "--report-har-path",
            str(har),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=tmp_path,
    )
    requests_made = len(json.loads(har.read_text())["log"]["entries"]) if har.exists() else 0
    print(f"\nschemathesis made {requests_made} requests")
    (tmp_path / "schemathesis.out").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert requests_made > 500
    server_log = (live.home / "serve.log").read_text()
    assert "dancecat_web.errors: unhandled" not in server_log, server_log[-4000:]

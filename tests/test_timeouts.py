"""A database port that never answers cannot hold DanceCat: every driver gives up in time.

The "database" here is a real TCP listener that accepts and then sends nothing (Redis's
port behaves so for the MySQL protocol), or a few bytes of a greeting and then nothing.
The connection test (API and console), a run, and a real ``dancecat serve`` under eight such
tests at once must all answer within ``CONNECT_TIMEOUT`` and a small margin.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from test_web_e2e import browser_sign_in
from test_web_helpers import dancecat, make_app, make_user, serve

from dancecat_core import migrations
from dancecat_core.models import TrackerStatus
from dancecat_core.runner import execute_tracker
from dancecat_core.runtime import build_runtime
from dancecat_core.settings import load_settings

CONNECT_TIMEOUT = 2  # seconds; libpq's minimum
MARGIN = 2.5  # for a machine of two busy cores
# A greeting cut short: MySQL's handshake packet announces 74 bytes and sends 6; PostgreSQL
# answers the SSL request with "N" (no SSL) and then never asks for a password.
PARTIAL = {"mysql": b"\x4a\x00\x00\x00\x0a5", "postgresql": b"N"}
# test_statements.Relay in a child process: prints its port, relays until killed.
RELAY_PROCESS = (
    "import sys, threading; from test_statements import Relay; "
    "relay = Relay(int(sys.argv[1]), freeze_on=sys.argv[2].encode()); "
    "print(relay.port, flush=True); threading.Event().wait()"
)


class Silent:
    """Accepts every connection, sends ``greeting`` (maybe nothing), then never a byte more."""

    def __init__(self, greeting: bytes = b""):
        self.greeting = greeting
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._held.append(client)  # kept open: the peer sees silence, not a hang-up
            if self.greeting:
                client.sendall(self.greeting)

    def close(self) -> None:
        self._listener.close()
        for client in self._held:
            client.close()


@pytest.fixture
def silent() -> Iterator:
    listeners: list[Silent] = []

    def make(greeting: bytes = b"") -> Silent:
        listeners.append(Silent(greeting))
        return listeners[-1]

    yield make
    for listener in listeners:
        listener.close()


def connection_body(driver: str, port: int) -> dict:
    return {
        "name": f"silent-{uuid.uuid4().hex[:6]}",
        "driver": driver,
        "host": "127.0.0.1",
        "port": port,
        "user": "nobody",
        "database": "nothing",
    }


@pytest.fixture
def quick_runtime(tmp_path: Path):
    environ = {
        "DANCECAT_HOME": str(tmp_path / "home"),
        "DANCECAT_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
    }
    runtime = build_runtime(load_settings(environ=environ))
    migrations.upgrade(runtime.engine)
    yield runtime
    runtime.engine.dispose()


GREETINGS = [(d, g) for d in ("mysql", "postgresql") for g in ("none", "partial")]


@pytest.mark.parametrize(("driver", "greeting"), GREETINGS)
def test_connection_test_and_run_answer_within_the_connect_timeout(
    quick_runtime, silent, driver, greeting
):
    listener = silent(PARTIAL[driver] if greeting == "partial" else b"")
    queued: list[int] = []
    app = make_app(quick_runtime, queued)
    user = make_user(quick_runtime, "alice@example.com")
    body = connection_body(driver, listener.port)

    clock = time.monotonic()
    answer = app.post_json("/api/v1/connections/test", body, headers=user.auth).json
    elapsed = time.monotonic() - clock
    assert answer["ok"] is False
    assert elapsed < CONNECT_TIMEOUT + MARGIN, (elapsed, answer)
    assert "\n" not in answer["error"] and str(listener.port) in answer["error"], answer

    connection = app.post_json("/api/v1/connections", body, headers=user.auth).json
    job = {"name": "never", "connection_id": connection["connection"]["id"], "query": "SELECT 1"}
    job_id = app.post_json("/api/v1/jobs", job, headers=user.auth).json["job"]["id"]
    tracker = app.post(f"/api/v1/jobs/{job_id}/runs", headers=user.auth).json["tracker"]
    clock = time.monotonic()
    outcome = execute_tracker(quick_runtime, tracker["id"])
    assert time.monotonic() - clock < CONNECT_TIMEOUT + MARGIN
    assert outcome.status == TrackerStatus.FAILED and str(listener.port) in outcome.error
    shown = app.get(f"/api/v1/trackers/{tracker['id']}", headers=user.auth).json["tracker"]
    assert shown["status"] == "Failed"


def test_mysql_partial_greeting_error_says_what_happened(quick_runtime, silent):
    listener = silent(PARTIAL["mysql"])
    app = make_app(quick_runtime)
    user = make_user(quick_runtime, "alice@example.com")
    answer = app.post_json(
        "/api/v1/connections/test", connection_body("mysql", listener.port), headers=user.auth
    ).json
    assert answer["error"] == (
        f"127.0.0.1:{listener.port} sent no MySQL greeting within {CONNECT_TIMEOUT} s"
    )


@pytest.mark.parametrize("driver", ["mysql", "postgresql"])
def test_console_connection_test_answers_within_the_connect_timeout(tmp_path, silent, driver):
    listener = silent()
    home = tmp_path / "home"
    home.mkdir()
    env = {"DANCECAT_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT)}
    dancecat(home, "init", env=env)
    dancecat(
        home, "connection", "add", "silent", "--driver", driver, "--host", "127.0.0.1",
        "--port", str(listener.port), "--user", "nobody", "--database", "nothing", env=env,
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "dancecat_core.console", "connection", "test", "silent"],
        env={**os.environ, "DANCECAT_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    # The console reports how long the check took, from connect to giving up.
    reported = re.fullmatch(r"error: failed after (\d+) ms: (.+)\n", done.stderr)
    assert reported, done.stderr
    assert int(reported.group(1)) < (CONNECT_TIMEOUT + MARGIN) * 1000, done.stderr
    assert str(listener.port) in reported.group(2)


def test_eight_silent_connection_tests_leave_the_web_app_answering(tmp_path, silent):
    """As many silent tests as waitress has threads: the sign-in page still answers."""
    listener = silent()
    home = tmp_path / "home"
    home.mkdir()
    env = {"DANCECAT_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT)}
    dancecat(home, "init", env=env)
    dancecat(home, "add-allowed-user", "ops@example.com", env=env)
    for live in serve(home, env):
        browser_sign_in(live, "ops@example.com")
        token = dancecat(home, "token", "create", "ops@example.com", env=env).strip()
        test_once = functools.partial(
            _silent_test, live.api("/connections/test"), token, listener.port
        )
        with ThreadPoolExecutor(max_workers=8) as pool:
            clock = time.monotonic()
            tests = [pool.submit(test_once, ("mysql", "postgresql")[i % 2]) for i in range(8)]
            time.sleep(0.5)  # all eight are waiting on the silent port now
            login = requests.get(f"{live.url}/login", timeout=CONNECT_TIMEOUT + MARGIN + 1)
            login_after = time.monotonic() - clock
            answers = [test.result() for test in tests]
        assert login.status_code == 200
        assert login_after < CONNECT_TIMEOUT + MARGIN + 0.5, login_after
        for elapsed, answer in answers:
            assert answer["ok"] is False, answer
            assert elapsed < CONNECT_TIMEOUT + MARGIN, (elapsed, answer)


def _silent_test(url: str, token: str, port: int, driver: str) -> tuple[float, dict]:
    clock = time.monotonic()
    answer = requests.post(
        url,
        json=connection_body(driver, port),
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    return time.monotonic() - clock, answer.json()


def test_a_mysql_server_silent_mid_query_cannot_keep_a_run_running(quick_runtime, mysql_database):
    """The run's query never reaches the server and nothing ever comes back: Failed, in time.

    The socket's read timeout during a query is the query's timeout + 5 s.
    """
    server, driver = mysql_database, "mysql"
    # In a process of its own, as a remote server is.
    relay = subprocess.Popen(
        [sys.executable, "-c", RELAY_PROCESS, str(server["port"]), "frozen-here"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent,
    )
    try:
        port = int(relay.stdout.readline())
        outcome, elapsed = _run_through(quick_runtime, port, server, driver)
    finally:
        relay.kill()
        relay.wait()
    assert outcome.status == TrackerStatus.FAILED, outcome
    assert elapsed < 2 + 5 + MARGIN, (elapsed, outcome.error)
    assert "\n" not in outcome.error


def _run_through(runtime, port: int, server: dict, driver: str):
    """Run a job with a 2 s timeout on ``server`` through the relay on ``port``."""
    app = make_app(runtime, [])
    user = make_user(runtime, "alice@example.com")
    body = {**connection_body(driver, port), "user": server["user"]}
    body["database"] = server["database"]
    connection = app.post_json("/api/v1/connections", body, headers=user.auth).json
    job = {
        "name": "frozen",
        "connection_id": connection["connection"]["id"],
        "query": "SELECT 'frozen-here' AS word",
        "timeout_seconds": 2,
    }
    job_id = app.post_json("/api/v1/jobs", job, headers=user.auth).json["job"]["id"]
    tracker = app.post(f"/api/v1/jobs/{job_id}/runs", headers=user.auth).json["tracker"]
    clock = time.monotonic()
    outcome = execute_tracker(runtime, tracker["id"])
    return outcome, time.monotonic() - clock

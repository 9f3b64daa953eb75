"""Helpers shared by the web tests (no tests here): users, tokens, the WebTest app, and a
real ``dancecat serve`` process on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import attrs
import requests

with warnings.catch_warnings():
    # WebOb imports the stdlib's cgi module, deprecated in 3.11; not ours to fix.
    warnings.simplefilter("ignore", DeprecationWarning)
    import webob  # noqa: F401
    import webtest

from dancecat_core.db import session_scope
from dancecat_core.runtime import Runtime
from dancecat_core.services import accounts
from dancecat_web.config import configure

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"


@attrs.define
class Member:
    id: int
    email: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_user(runtime: Runtime, email: str, *, admin: bool = False) -> Member:
    """An allowed, registered user with an API token."""
    with session_scope(runtime.session_factory) as session:
        accounts.allow_email(session, email, admin=admin)
        user = accounts.sign_in(session, runtime.settings, email, PASSWORD, PASSWORD)
        _, token = accounts.create_token(session, user, "tests")
        return Member(user.id, user.email, token)


def make_app(runtime: Runtime, queued: list[int] | None = None) -> webtest.TestApp:
    enqueue = queued.append if queued is not None else (lambda tracker_id: None)
    app = configure(runtime=runtime, enqueue_run=enqueue).make_wsgi_app()
    return webtest.TestApp(app)


def sign_in(
    app: webtest.TestApp, email: str, password: str = PASSWORD, *, first: bool = False
) -> str:
    """Sign in through the form like a browser (``first``: setting the password, typed
    twice); return the session's CSRF token."""
    form = app.get("/login").form
    form["email"] = email
    form["password"] = password
    if first:
        form["confirm"] = password
    form.submit(status=303)
    return app.get("/api/v1/me").json["csrf_token"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _home_env(home: Path) -> dict[str, str]:
    """``home`` as DANCECAT_HOME; SQLite files may be opened in the folder holding it."""
    return {"DANCECAT_HOME": str(home), "DANCECAT_SQLITE_ALLOWED_DIRS": str(home.parent)}


def dancecat(home: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run the ``dancecat`` console against ``home``; return its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "dancecat_core.console", *args],
        env={**os.environ, **_home_env(home), **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@attrs.define
class LiveServer:
    url: str
    home: Path
    process: subprocess.Popen

    def api(self, path: str) -> str:
        return f"{self.url}/api/v1{path}"


def serve(
    home: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Iterator[LiveServer]:
    """Start ``dancecat serve`` (with ``args``) on a free port; yield once it answers; stop
    it after."""
    port = free_port()
    log = open(home / "serve.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "dancecat_core.console", "serve", "--port", str(port), *args],
        env={**os.environ, **_home_env(home), **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{url}/api/v1/openapi.json", timeout=2)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "dancecat serve did not start:\n" + (home / "serve.log").read_text()
                    ) from None
                time.sleep(0.1)
        yield LiveServer(url, home, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def first_token(live: LiveServer, email: str) -> str:
    """Sign ``email`` (allowed, never signed in) in through the form, setting the password,
    then create an API token for it with the console, as docs/API.md says to."""
    browser = requests.Session()
    page = browser.get(f"{live.url}/login", timeout=10)
    csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    browser.post(
        f"{live.url}/login",
        data={"email": email, "password": PASSWORD, "confirm": PASSWORD, "csrf_token": csrf},
        allow_redirects=False,
        timeout=10,
    ).raise_for_status()
    return dancecat(live.home, "token", "create", email).strip()

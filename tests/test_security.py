"""Security across the whole app: the authorisation matrix over every route, CSRF on every
unsafe route, secrets grepped out of every output of a scripted session, an adversarial
scrub table on PostgreSQL and MariaDB, read-only connections against COPY and writing
functions, and what the pages may contain under the CSP.

Routes are enumerated from Pyramid's introspector, so a route added without being put in
these tables fails the tests rather than going unchecked.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import uuid
from urllib.parse import urlencode

import openpyxl
import psycopg2
import pymysql
import pytest
from test_notify import Mailer, free_port
from test_web_helpers import PASSWORD, make_app, make_user, sign_in

from dancecat_core import db, migrations, notify
from dancecat_core.drivers import ConnectionParams
from dancecat_core.errors import QueryError, ReadOnlyViolation
from dancecat_core.models import ApiToken, Connection, Job, Tracker, TrackerStatus, User
from dancecat_core.runner import execute_tracker
from dancecat_core.runtime import build_runtime
from dancecat_core.services import accounts, probes
from dancecat_core.settings import load_settings
from dancecat_plugins.mysql_driver import MysqlDriver
from dancecat_plugins.postgresql_driver import PostgresDriver

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def route_methods(app) -> dict[str, tuple[str, set[str]]]:
    """{route name: (pattern, methods)} for every route, from the introspector."""
    registry = app.app.registry
    introspector = registry.introspector
    found: dict[str, tuple[str, set[str]]] = {}
    for item in introspector.get_category("routes"):
        route = item["introspectable"]
        methods: set[str] = set()
        for related in introspector.related(route):
            if related.category_name == "views":
                request_methods = related["request_methods"]
                if isinstance(request_methods, str):
                    request_methods = (request_methods,)
                methods.update(request_methods or ("ANY",))
        found[route["name"]] = (route["pattern"], methods)
    return found


# -- the world: two members and an admin --------------------------------------------------


@pytest.fixture
def world(runtime, sqlite_chinook):
    app = make_app(runtime)
    alice = make_user(runtime, "alice@example.com")
    bob = make_user(runtime, "bob@example.com")
    admin = make_user(runtime, "root@example.com", admin=True)
    connection = app.post_json(
        "/api/v1/connections",
        {"name": "alice-db", "driver": "sqlite", "database": str(sqlite_chinook)},
        headers=alice.auth,
    ).json["connection"]
    job = app.post_json(
        "/api/v1/jobs",
        {
            "name": "alice-job",
            "connection_id": connection["id"],
            "query": "SELECT ArtistId, Name FROM Artist ORDER BY ArtistId LIMIT 3",
            "recipients": ["alice@example.com"],
            "schedules": [{"type": "daily", "start": "2031-01-01 09:00", "timezone": "UTC"}],
        },
        headers=alice.auth,
    ).json["job"]
    tracker = app.post(f"/api/v1/jobs/{job['id']}/runs", headers=alice.auth).json["tracker"]
    assert execute_tracker(runtime, tracker["id"]).status == TrackerStatus.SUCCESS
    with runtime.session_factory() as session:
        token_id = session.query(ApiToken.id).filter(ApiToken.user_id == alice.id).scalar()
    pull_url = app.post_json(
        f"/api/v1/jobs/{job['id']}/pull-urls", {}, headers=alice.auth
    ).json["pull_url"]
    trigger = app.post_json(
        f"/api/v1/jobs/{job['id']}/triggers", {}, headers=alice.auth
    ).json["trigger"]
    ids = {
        "pull_url": pull_url["id"],
        "trigger": trigger["id"],
        "connection": connection["id"],
        "job": job["id"],
        "tracker": tracker["id"],
        "token": token_id,
        "user": alice.id,
    }
    return app, alice, bob, admin, ids


# Every route that names one object in its path: the kind of object, and the path.
ID_ROUTES = {
    "results.tracker": ("tracker", "/job/result/{id}/csv"),
    "results.latest": ("job", "/job/latest-result/{id}/csv"),
    "api.connection": ("connection", "/api/v1/connections/{id}"),
    "api.connection.test": ("connection", "/api/v1/connections/{id}/test"),
    "api.connection.schema": ("connection", "/api/v1/connections/{id}/schema"),
    "api.connection.schema.refresh": ("connection", "/api/v1/connections/{id}/schema/refresh"),
    "api.connection.schema.columns": (
        "connection",
        "/api/v1/connections/{id}/schema/columns?schema=main&table=Artist",
    ),
    "api.job.destinations.test": ("job", "/api/v1/jobs/{id}/destinations/test"),
    "api.job": ("job", "/api/v1/jobs/{id}"),
    "api.job.preview": ("job", "/api/v1/jobs/{id}/preview"),
    "api.job.runs": ("job", "/api/v1/jobs/{id}/runs"),
    "api.job.latest_result": ("job", "/api/v1/jobs/{id}/latest/result.csv"),
    "api.tracker": ("tracker", "/api/v1/trackers/{id}"),
    "api.tracker.result": ("tracker", "/api/v1/trackers/{id}/result.json"),
    "ui.connection.edit": ("connection", "/connections/{id}/edit"),
    "ui.connection.delete": ("connection", "/connections/{id}/delete"),
    "ui.job": ("job", "/jobs/{id}"),
    "ui.job.edit": ("job", "/jobs/{id}/edit"),
    "ui.job.delete": ("job", "/jobs/{id}/delete"),
    "ui.job.run": ("job", "/jobs/{id}/run"),
    "ui.tracker.download": ("tracker", "/runs/{id}/result.xlsx"),
    "ui.latest.download": ("job", "/jobs/{id}/latest.json"),
    "ui.token.revoke": ("token", "/tokens/{id}/revoke"),
    "api.job.pull_urls": ("job", "/api/v1/jobs/{id}/pull-urls"),
    "api.pull_url": ("pull_url", "/api/v1/pull-urls/{id}"),
    "api.pull_url.rotate": ("pull_url", "/api/v1/pull-urls/{id}/rotate"),
    "api.job.triggers": ("job", "/api/v1/jobs/{id}/triggers"),
    "api.trigger": ("trigger", "/api/v1/triggers/{id}"),
    "ui.job.pull_urls": ("job", "/jobs/{id}/pull-urls"),
    "ui.job.triggers": ("job", "/jobs/{id}/triggers"),
    "ui.pull_url.revoke": ("pull_url", "/pull-urls/{id}/revoke"),
    "ui.pull_url.rotate": ("pull_url", "/pull-urls/{id}/rotate"),
    "ui.trigger.revoke": ("trigger", "/triggers/{id}/revoke"),
    "ui.job.destination_test": ("job", "/jobs/{id}/destinations/test"),
    # The Users screen is for admins: a member gets 404 for every user, real or not.
    "ui.user.disable": ("user", "/users/{id}/disable"),
    "ui.user.enable": ("user", "/users/{id}/enable"),
    "ui.user.reset_password": ("user", "/users/{id}/reset-password"),
    "ui.user.remove": ("user", "/users/{id}/remove"),
}
# Routes that list objects or take object ids in their body or query: checked below.
INDIRECT_ROUTES = {
    "api.connections",
    "api.format_sql",  # its body's connection_id goes through connections.get (access-checked)
    "api.jobs",
    "api.runs",
    "api.preview",
    "ui.connections",
    "ui.jobs",
    "ui.job.new",
    "ui.job.preview",
    "ui.tokens",
    "ui.users",
    "ui.trackers.status",
    "home",
}
# Addressed by an unguessable token in the path, never by a session cookie (so CSRF cannot
# apply): tests/test_pull_urls.py and tests/test_triggers_chains.py try other users',
# revoked, rotated and malformed tokens.
TOKEN_ROUTES = {"pull", "trigger"}
# Routes that touch no stored object of anyone's (or only the caller's own user).
NO_OBJECT_ROUTES = {
    "static",
    "accounts.login",
    "accounts.logout",
    "api.openapi",
    "api.me",
    "api.connections.test_unsaved",
    "api.destinations.test",
    "ui.connection.new",
    "ui.connection.test",
    "ui.schedules.next",
}

API_BODIES = {
    ("connection", "PUT"): {"name": "stolen", "driver": "sqlite", "database": "x"},
    ("connection", "PATCH"): {"name": "stolen"},
    ("job", "PUT"): {"name": "stolen", "connection_id": 1, "query": "select 1"},
    ("job", "PATCH"): {"name": "stolen"},
}


def _request(app, method: str, path: str, *, auth=None, csrf=None, kind=""):
    headers = dict(auth or {})
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    kwargs = {"headers": headers, "expect_errors": True}
    if method in UNSAFE and path.startswith("/api/"):
        body = API_BODIES.get((kind, method))
        if body is not None:
            kwargs["body"] = json.dumps(body).encode()
            kwargs["content_type"] = "application/json"
    elif method == "POST":
        form = {"csrf_token": csrf or "", "name": "stolen", "action": "save"}
        kwargs["body"] = urlencode(form).encode()
        kwargs["content_type"] = "application/x-www-form-urlencoded"
    return app.request(path, method=method, **kwargs)


def test_every_route_is_in_the_authorisation_matrix(runtime):
    routes = set(route_methods(make_app(runtime)))
    covered = set(ID_ROUTES) | INDIRECT_ROUTES | NO_OBJECT_ROUTES | TOKEN_ROUTES
    assert routes == covered, f"not covered: {routes - covered}; gone: {covered - routes}"


def test_no_cross_user_read_or_write_and_ids_leak_nothing(world, runtime):
    app, alice, bob, admin, ids = world
    routes = route_methods(app)
    bob_browser = make_app(runtime)
    bob_csrf = sign_in(bob_browser, bob.email)
    admin_browser = make_app(runtime)
    sign_in(admin_browser, admin.email)
    checked = 0
    for name, (kind, template) in ID_ROUTES.items():
        for method in sorted(routes[name][1]):
            theirs = template.format(id=ids[kind])
            nobodys = template.format(id=987654)
            if template.startswith("/api/"):
                # The API by token; the path-style result routes and the screens by session.
                got = _request(app, method, theirs, auth=bob.auth, kind=kind)
                none = _request(app, method, nobodys, auth=bob.auth, kind=kind)
            else:
                got = _request(bob_browser, method, theirs, csrf=bob_csrf, kind=kind)
                none = _request(bob_browser, method, nobodys, csrf=bob_csrf, kind=kind)
            assert got.status_int == 404, (name, method, got.status, got.text[:300])
            # Someone else's id answers exactly as an id that never existed.
            assert (got.status_int, got.body) == (none.status_int, none.body), (name, method)
            checked += 1
            if method == "GET" and name != "ui.token.revoke":
                if template.startswith("/api/"):
                    seen = app.get(theirs, headers=admin.auth, expect_errors=True)
                else:
                    seen = admin_browser.get(theirs, expect_errors=True)
                assert seen.status_int == 200, (name, "admin", seen.status)
            # Bearer tokens work on the path-style result routes too: same answer for Bob.
            if name.startswith("results."):
                by_token = app.get(theirs, headers=bob.auth, expect_errors=True)
                assert by_token.status_int == 404
    assert checked >= 27
    # Nothing of Alice's changed through all that.
    with runtime.session_factory() as session:
        assert session.get(Job, ids["job"]).name == "alice-job"
        assert session.get(Job, ids["job"]).deleted_at is None
        assert session.get(Connection, ids["connection"]).name == "alice-db"
        assert session.get(ApiToken, ids["token"]).revoked_at is None
        assert session.query(Tracker).count() == 1  # Bob queued no run of hers
        hers = session.get(User, alice.id)
        assert hers.is_active and hers.password_hash and hers.session_generation == 0
    app.get("/api/v1/me", headers=alice.auth, status=200)

    # Lists and indirect references show Bob nothing of Alice's.
    assert app.get("/api/v1/jobs", headers=bob.auth).json["jobs"] == []
    assert app.get("/api/v1/connections", headers=bob.auth).json["connections"] == []
    for page in ("/", "/jobs", "/connections", "/tokens", "/jobs/new"):
        text = bob_browser.get(page, status=(200, 302)).text
        assert "alice-job" not in text and "alice-db" not in text, page
        assert "/users" not in text, page  # no Users tab for members
    # The Users screen and its invite form: 404 for a member, like a page that is not there.
    assert bob_browser.get("/users", status=404).text == bob_browser.get("/userz", status=404).text
    invite = {"csrf_token": bob_csrf, "email": "mallory@example.com", "admin": "on"}
    bob_browser.post("/users", invite, status=404)
    with runtime.session_factory() as session:
        assert accounts.find_user(session, "mallory@example.com") is None
    assert "/users" in admin_browser.get("/jobs").text
    assert alice.email in admin_browser.get("/users").text
    status = bob_browser.get(f"/runs/status.json?ids={ids['tracker']}").json
    assert str(ids["tracker"]) not in json.dumps(status).replace(f"ids={ids['tracker']}", "")
    body = {"connection_id": ids["connection"], "query": "SELECT 1"}
    refused = app.post_json("/api/v1/preview", body, headers=bob.auth, expect_errors=True)
    assert refused.status_int in (404, 422) and "Artist" not in refused.text
    job_body = {"name": "x", "connection_id": ids["connection"], "query": "SELECT 1"}
    app.post_json("/api/v1/jobs", job_body, headers=bob.auth, status=422)
    form = {"csrf_token": bob_csrf, "connection_id": str(ids["connection"]), "query": "SELECT 1"}
    preview = bob_browser.post("/jobs/preview", form, expect_errors=True)
    # The form's preview panel says why in place (a 200 fragment), like for any missing id.
    assert "no such connection" in preview.text and "ArtistId" not in preview.text
    nobodys = bob_browser.post("/jobs/preview", {**form, "connection_id": "987654"})
    assert nobodys.text == preview.text
    new_job = {**form, "name": "bobs", "annotation": "", "timeout_seconds": "", "action": "save"}
    assert bob_browser.post("/jobs/new", new_job, expect_errors=True).status_int == 422
    with runtime.session_factory() as session:
        assert session.query(Job).count() == 1


def test_every_unsafe_route_needs_the_csrf_token_with_a_session(world, runtime):
    app, alice, _, _, ids = world
    browser = make_app(runtime)
    sign_in(browser, alice.email)
    checked = []
    for name, (pattern, methods) in route_methods(app).items():
        if name in TOKEN_ROUTES:
            continue
        for method in sorted(methods & UNSAFE):
            path = re.sub(
                r"\{id[^}]*\}", str(ids.get(ID_ROUTES.get(name, ("job",))[0], 1)), pattern
            )
            path = re.sub(r"\{format[^}]*\}", "csv", path)
            response = browser.request(path, method=method, expect_errors=True)
            assert response.status_int == 403, (name, method, response.status)
            assert "CSRF" in response.text or "csrf" in response.text, (name, method)
            checked.append((name, method))
    # The same requests with a bearer token are not cookie-borne, so CSRF does not apply;
    # sign-in and sign-out are session-only and stay protected (test_web_app).
    assert len(checked) >= 25, checked
    with runtime.session_factory() as session:
        assert session.get(Job, ids["job"]).deleted_at is None


# -- secrets in every output of a scripted session ---------------------------------------


def test_no_password_or_token_in_any_output_of_a_session(tmp_path, pg_chinook, caplog):
    mailer = Mailer(free_port())
    mailer.start()
    db_password = f"Pg-Secret-{uuid.uuid4().hex[:10]}"
    smtp_password = f"Smtp-Secret-{uuid.uuid4().hex[:10]}"
    environ = {
        "DANCECAT_HOME": str(tmp_path / "home"),
        "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
        "DANCECAT_SMTP_HOST": "127.0.0.1",
        "DANCECAT_SMTP_PORT": str(mailer.port),
        "DANCECAT_SMTP_PASSWORD": smtp_password,
        "DANCECAT_CONNECT_TIMEOUT": "3",
    }
    runtime = build_runtime(load_settings(environ=environ))
    migrations.upgrade(runtime.engine)
    caplog.set_level(logging.DEBUG)
    outputs: list[tuple[str, str]] = []
    try:
        alice = make_user(runtime, "alice@example.com")
        browser = make_app(runtime)
        csrf = sign_in(browser, alice.email)

        def page(label: str, response) -> None:
            outputs.append((label, response.text))

        connection_form = {
            "csrf_token": csrf,
            "name": "warehouse",
            "driver": "postgresql",
            "host": pg_chinook["host"],
            "port": str(pg_chinook["port"]),
            "database": pg_chinook["database"],
            "user": pg_chinook["user"],
            "password": db_password,
        }
        page("test connection", browser.post("/connections/test", connection_form))
        page("save connection", browser.post("/connections/new", connection_form).follow())
        # A connection that cannot work: its errors carry the password's context.
        broken = {**connection_form, "name": "broken", "port": "1"}
        page("test broken", browser.post("/connections/test", broken, expect_errors=True))
        browser.post("/connections/new", broken)
        api_broken = {
            "name": "broken-api",
            "driver": "postgresql",
            "host": "127.0.0.1",
            "port": 1,
            "database": "x",
            "user": "u",
            "password": db_password,
        }
        page(
            "api test",
            browser.post_json(
                "/api/v1/connections/test", api_broken, headers={"X-CSRF-Token": csrf},
                expect_errors=True,
            ),
        )  # fmt: skip
        with runtime.session_factory() as session:
            good_id, bad_id = (
                session.query(Connection.id).filter(Connection.name == n).scalar()
                for n in ("warehouse", "broken")
            )
        job_ids = []
        for name, connection_id in (("tracks", good_id), ("doomed", bad_id)):
            form = {
                "csrf_token": csrf,
                "name": name,
                "annotation": "",
                "connection_id": str(connection_id),
                "query": "SELECT track_id, name FROM track ORDER BY track_id LIMIT 5",
                "timeout_seconds": "",
                "recipients": "alice@example.com",
                "action": "save",
            }
            page(f"preview {name}", browser.post("/jobs/preview", form, expect_errors=True))
            saved = browser.post("/jobs/new", form)
            job_ids.append(int(saved.location.rsplit("/", 1)[1]))
        tracker_ids = []
        for job_id in job_ids:
            browser.post(f"/jobs/{job_id}/run", {"csrf_token": csrf})
            with runtime.session_factory() as session:
                tracker_ids.append(
                    session.query(Tracker.id).filter(Tracker.job_id == job_id).scalar()
                )
            execute_tracker(runtime, tracker_ids[-1])
            for notification_id in notify.create_notifications(runtime, tracker_ids[-1]):
                notify.deliver(runtime, notification_id)
        created = browser.post("/tokens", {"csrf_token": csrf, "name": "ci"})
        api_token = re.search(r"dct_[A-Za-z0-9_-]+", created.text).group(0)  # shown once
        bearer = {"Authorization": f"Bearer {api_token}"}
        for path in [
            "/", "/jobs", f"/jobs/{job_ids[0]}", f"/jobs/{job_ids[1]}", f"/jobs/{job_ids[0]}/edit",
            "/connections", f"/connections/{good_id}/edit", f"/connections/{good_id}/delete",
            "/tokens", f"/runs/status.json?ids={tracker_ids[0]},{tracker_ids[1]}",
            f"/runs/{tracker_ids[0]}/result.csv", f"/runs/{tracker_ids[0]}/result.json",
            f"/jobs/{job_ids[0]}/latest.csv", "/connections/new", "/jobs/new",
        ]:  # fmt: skip
            page(path, browser.get(path))
        for path in [
            "/api/v1/me", "/api/v1/connections", f"/api/v1/connections/{good_id}",
            f"/api/v1/connections/{bad_id}", "/api/v1/jobs", f"/api/v1/jobs/{job_ids[1]}/runs",
            f"/api/v1/trackers/{tracker_ids[1]}", f"/api/v1/trackers/{tracker_ids[0]}/result.json",
        ]:  # fmt: skip
            page(path, browser.get(path, headers=bearer))
        page("api preview", browser.post(f"/api/v1/jobs/{job_ids[1]}/preview", headers=bearer,
                                         expect_errors=True))  # fmt: skip
        page("bad token", browser.get("/api/v1/me", headers={"Authorization": "Bearer dct_x"},
                                      expect_errors=True))  # fmt: skip
        browser.post("/logout", {"csrf_token": csrf})
        page("wrong sign-in", _wrong_sign_in(browser, alice.email))

        with runtime.session_factory() as session:
            errors = [t.error or "" for t in session.query(Tracker).all()]
            assert any(errors), "the broken connection's run must have failed with an error"
            outputs.append(("tracker errors", "\n".join(errors)))
            stored = session.query(Connection.password_encrypted).all()
            outputs.append(("stored ciphertexts", repr(stored)))
        for _, message in mailer.inbox.messages:
            outputs.append(("email", message.as_string()))
        assert len(mailer.inbox.messages) == 2
        console_env = {**os.environ, **environ}
        for args in (
            ["connection", "list"],
            ["connection", "test", "warehouse"],
            ["connection", "test", "broken"],
            ["job", "list"],
            ["job", "run", "tracks"],
            ["--debug", "job", "run", "doomed"],
            ["--debug", "connection", "test", "broken"],
        ):
            done = subprocess.run(
                [sys.executable, "-m", "dancecat_core.console", *args],
                env=console_env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            outputs.append((" ".join(args), done.stdout + done.stderr))
        outputs.append(("log", caplog.text))
        outputs.append(("log records", "\n".join(r.getMessage() for r in caplog.records)))
    finally:
        mailer.stop()
        runtime.engine.dispose()

    secrets = {
        "connection password": db_password,
        "API token": api_token,
        "token body": api_token.removeprefix("dct_"),
        "SMTP password": smtp_password,
        "user password": PASSWORD,
    }
    for label, text in outputs:
        for what, secret in secrets.items():
            assert secret not in text, f"{what} appears in {label}"
        if label.startswith("/") and "<html" in text:
            _no_inline_script_or_style(label, text)
    # The one place the token is shown: the page right after creating it.
    assert api_token in created.text
    print(f"\ngrepped {len(outputs)} outputs ({sum(len(t) for _, t in outputs)} chars)")


def _wrong_sign_in(browser, email: str):
    form = browser.get("/login").form
    form["email"], form["password"] = email, "not the password"
    return form.submit(expect_errors=True)


def _no_inline_script_or_style(label: str, html: str) -> None:
    """What the CSP (script-src/style-src 'self', no 'unsafe-inline') would block."""
    for tag in re.findall(r"<script\b[^>]*>", html, flags=re.I):
        assert "src=" in tag, f"inline script in {label}: {tag}"
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html), f"inline script body in {label}"
    assert not re.search(r"\son[a-z]+\s*=", html, flags=re.I), f"event handler in {label}"
    assert not re.search(r"<style\b", html, flags=re.I), f"inline <style> in {label}"
    assert not re.search(r"\sstyle\s*=", html, flags=re.I), f"style attribute in {label}"


def test_security_headers_on_every_get_route(world, runtime):
    app, alice, _, _, ids = world
    browser = make_app(runtime)
    sign_in(browser, alice.email)
    for name, (pattern, methods) in route_methods(app).items():
        if "GET" not in methods or name == "static":
            continue
        kind = ID_ROUTES.get(name, ("job",))[0]
        path = re.sub(r"\{id[^}]*\}", str(ids.get(kind, 1)), pattern)
        path = re.sub(r"\{format[^}]*\}", "csv", path)
        response = browser.get(path, expect_errors=True)
        assert response.status_int < 500, (name, response.status)
        csp = response.headers["Content-Security-Policy"]
        assert "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp, name
        assert "script-src 'self'" in csp, name
        assert response.headers["X-Content-Type-Options"] == "nosniff", name
        assert response.headers["Referrer-Policy"] == "same-origin", name
        assert response.headers["X-Frame-Options"] == "DENY", name
        if response.content_type == "text/html":
            _no_inline_script_or_style(path, response.text)


def test_password_rule_length_and_variety(runtime):
    settings = runtime.settings
    with db.session_scope(runtime.session_factory) as session:
        accounts.allow_email(session, "new@example.com")
        for bad, says in [
            ("short1", f"at least {settings.password_min_length} characters"),
            ("aaaaaaaaaaaaaaaa", "at least 4 different characters"),
            ("x" * 1025 + "abcd", "at most 1024 characters"),
        ]:
            with pytest.raises(Exception, match=says) as caught:
                accounts.sign_in(session, settings, "new@example.com", bad, bad)
            assert getattr(caught.value, "field", None) == "password"
    app = make_app(runtime)
    form = app.get("/login").form
    form["email"], form["password"], form["confirm"] = "new@example.com", "short1", "short1"
    refused = form.submit(status=400)
    assert f"at least {settings.password_min_length} characters" in refused.text


def test_unknown_email_is_refused_exactly_like_a_wrong_password(runtime):
    """test_web_app proves the lockout after LOGIN_MAX_FAILURES; this adds that an unknown
    email answers exactly like a wrong password (no account enumeration)."""
    user = make_user(runtime, "erin@example.com")
    app = make_app(runtime)
    answers = []
    for email in (user.email, "nobody@example.com"):
        form = app.get("/login").form
        form["email"], form["password"] = email, "wrong password!"
        answers.append(form.submit(status=400).html.select_one("main").get_text(" ", strip=True))
    assert answers[0] == answers[1]


# -- the adversarial scrub table ------------------------------------------------------------

BCRYPT = "$2b$12$" + "R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"
ARGON = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = (
    "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAq7BFUpkGp3+L\n"
    "-----END PRIVATE KEY-----"
)
AWS = "AKIAIOSFODNN7EXAMPLE"
SHAPED = [BCRYPT, ARGON, JWT, PEM, AWS, "ghp_" + "Zz09" * 9]
CREDENTIAL_NAMES = [
    "Password", "PASS_WORD", "user-passwd", "pwd", "apiKey", "API_KEY", "auth_token",
    "Refresh Token", "client_secret", "privateKey", "Secret Key", "db_credential",
    "Passphrase", "TOTP_Secret", "password_hash", "AccessKey", "session-key",
]  # fmt: skip


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_adversarial_scrub_table_leaks_nothing_anywhere(kind, request, tmp_path):
    facts = request.getfixturevalue("pg_database" if kind == "postgresql" else "mysql_database")
    quote = (lambda n: f'"{n}"') if kind == "postgresql" else (lambda n: f"`{n}`")
    plain = {name: f"plain-{i}-{uuid.uuid4().hex[:8]}" for i, name in enumerate(CREDENTIAL_NAMES)}
    hidden_plain = f"hunter2-{uuid.uuid4().hex[:8]}"
    payload = json.dumps(
        {"user": "ann", "password": hidden_plain, "api_key": "k-" + hidden_plain, "jwt": JWT}
    )
    columns = ", ".join(f"{quote(n)} TEXT" for n in CREDENTIAL_NAMES)
    create = f"CREATE TABLE people (id INT, note TEXT, payload TEXT, {columns})"
    insert_columns = ", ".join(quote(n) for n in CREDENTIAL_NAMES)
    rows = [(i, f"see {secret} here", payload, *plain.values()) for i, secret in enumerate(SHAPED)]
    _load(kind, facts, create, f"INSERT INTO people (id, note, payload, {insert_columns})", rows)

    mailer = Mailer(free_port())
    mailer.start()
    environ = {
        "DANCECAT_HOME": str(tmp_path / "home"),
        "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
        "DANCECAT_SMTP_HOST": "127.0.0.1",
        "DANCECAT_SMTP_PORT": str(mailer.port),
    }
    runtime = build_runtime(load_settings(environ=environ))
    migrations.upgrade(runtime.engine)
    try:
        alice = make_user(runtime, "alice@example.com")
        app = make_app(runtime)
        connection = app.post_json(
            "/api/v1/connections",
            {"name": kind, "driver": kind, "host": facts["host"], "port": facts["port"],
             "database": facts["database"], "user": facts["user"]},
            headers=alice.auth,
        ).json["connection"]  # fmt: skip
        aliases = ", ".join(f"{quote(n)} AS c{i}" for i, n in enumerate(CREDENTIAL_NAMES))
        sql = (
            f"SELECT id, note, payload, {insert_columns}, {quote('Password')} AS p, "
            f"{aliases} FROM people ORDER BY id"
        )
        job = app.post_json(
            "/api/v1/jobs",
            {"name": "people", "connection_id": connection["id"], "query": sql,
             "recipients": ["boss@example.com"]},
            headers=alice.auth,
        ).json["job"]  # fmt: skip
        outputs = {
            "api preview": app.post(f"/api/v1/jobs/{job['id']}/preview", headers=alice.auth).text,
            "unsaved preview": app.post_json(
                "/api/v1/preview", {"connection_id": connection["id"], "query": sql},
                headers=alice.auth,
            ).text,
        }  # fmt: skip
        tracker = app.post(f"/api/v1/jobs/{job['id']}/runs", headers=alice.auth).json["tracker"]
        assert execute_tracker(runtime, tracker["id"]).status == TrackerStatus.SUCCESS
        for fmt in ("csv", "json", "xlsx"):
            body = app.get(
                f"/api/v1/trackers/{tracker['id']}/result.{fmt}", headers=alice.auth
            ).body
            outputs[fmt] = _xlsx_text(body) if fmt == "xlsx" else body.decode()
        outputs["tracker"] = app.get(f"/api/v1/trackers/{tracker['id']}", headers=alice.auth).text
        with runtime.session_factory() as session:
            preview = probes.preview(
                runtime, session, None, connection_id=connection["id"], query=sql
            )
        outputs["preview rows"] = repr(preview.rows) + repr(preview.header)
        for notification_id in notify.create_notifications(runtime, tracker["id"]):
            notify.deliver(runtime, notification_id)
        [(_, message)] = mailer.inbox.messages
        [attachment] = list(message.iter_attachments())
        outputs["email"] = message.get_body(("plain",)).get_content()
        outputs["email attachment"] = _xlsx_text(attachment.get_content())
    finally:
        mailer.stop()
        runtime.engine.dispose()

    secrets = [*plain.values(), hidden_plain, *SHAPED, "$2b$12$", "$argon2id$", "AKIA"]
    for label, text in outputs.items():
        for secret in secrets:
            assert secret not in text, f"{secret[:20]}… leaked through {label}"
    # What is left: the innocent columns, the masks and the JSON's innocent fields.
    header = outputs["csv"].splitlines()[0]
    assert header == "id,note,payload", header
    assert "[masked]" in outputs["csv"] and '""user"": ""ann""' in outputs["csv"]
    assert json.loads(outputs["json"])  # still valid JSON after masking
    print(f"\n{kind}: {len(outputs)} outputs clean; header {header}")


def _xlsx_text(body: bytes) -> str:
    book = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
    text = repr([list(sheet.iter_rows(values_only=True)) for sheet in book.worksheets])
    book.close()
    return text


def _load(kind: str, facts: dict, create: str, insert: str, rows: list[tuple]) -> None:
    marks = ", ".join(["%s"] * len(rows[0]))
    if kind == "postgresql":
        with (
            psycopg2.connect(
                host=facts["host"], port=facts["port"], user=facts["user"], dbname=facts["database"]
            ) as conn,
            conn.cursor() as cursor,
        ):
            cursor.execute(create)
            cursor.executemany(f"{insert} VALUES ({marks})", rows)
        conn.close()
        return
    conn = pymysql.connect(
        host=facts["host"], port=facts["port"], user=facts["user"], database=facts["database"],
        autocommit=True,
    )  # fmt: skip
    with conn.cursor() as cursor:
        cursor.execute(create)
        cursor.executemany(f"{insert} VALUES ({marks})", rows)
    conn.close()


# -- read-only connections: what test_drivers does not already try -----------------------


def _params(kind: str, facts: dict) -> ConnectionParams:
    return ConnectionParams(
        driver=kind, database=facts["database"], host=facts["host"], port=facts["port"],
        user=facts["user"], password=None, read_only=True,
    )  # fmt: skip


def _run(session, sql: str) -> None:
    cursor = session.open_query(sql, timeout=10)
    try:
        for _ in cursor.batches(100):
            pass
    finally:
        cursor.close()


def test_postgres_read_only_refuses_copy_and_writing_functions(pg_database, tmp_path):
    target = f"/tmp/dc-leak-{uuid.uuid4().hex[:8]}.csv"
    setup = [
        "CREATE TABLE kept (id int)",
        "INSERT INTO kept VALUES (1), (2)",
        "CREATE FUNCTION sneaky() RETURNS int LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO kept VALUES (99); RETURN 1; END $$",
        "CREATE FUNCTION definer() RETURNS int LANGUAGE sql SECURITY DEFINER AS "
        "$$ DELETE FROM kept RETURNING 1 $$",
        "CREATE SEQUENCE counter",
    ]
    with (
        psycopg2.connect(
            host=pg_database["host"], user=pg_database["user"], dbname=pg_database["database"]
        ) as conn,
        conn.cursor() as cursor,
    ):
        for statement in setup:
            cursor.execute(statement)
    conn.close()
    attempts = [
        f"COPY kept TO '{target}'",
        f"COPY (SELECT 1) TO '{target}'",
        f"COPY kept TO PROGRAM 'touch {target}'",
        "COPY kept FROM PROGRAM 'echo 5'",
        "SELECT sneaky()",
        "SELECT * FROM sneaky()",
        "SELECT definer()",
        "SELECT setval('counter', 42)",
        "SELECT set_config('transaction_read_only', 'off', false)",
        "SELECT lo_create(0)",
        "SELECT pg_catalog.pg_advisory_lock(1), sneaky()",
    ]
    refused = []
    with PostgresDriver().connect(_params("postgresql", pg_database), timeout=10) as session:
        for sql in attempts:
            try:
                _run(session, sql)
            except QueryError as exc:
                refused.append((sql, type(exc).__name__))
            else:
                refused.append((sql, "ran"))
    # PostgreSQL 15 lets lo_create() run in a READ ONLY transaction; the driver rolls every
    # read-only transaction back, so the large object is gone (checked below).
    assert [sql for sql, outcome in refused if outcome == "ran"] == ["SELECT lo_create(0)"]
    with (
        psycopg2.connect(
            host=pg_database["host"], user=pg_database["user"], dbname=pg_database["database"]
        ) as conn,
        conn.cursor() as cursor,
    ):
        cursor.execute("SELECT count(*) FROM kept")
        assert cursor.fetchone()[0] == 2
        cursor.execute("SELECT last_value FROM counter")
        assert cursor.fetchone()[0] == 1
        cursor.execute("SELECT count(*) FROM pg_largeobject_metadata")
        assert cursor.fetchone()[0] == 0
    conn.close()
    assert not os.path.exists(target)
    assert sum(kind == ReadOnlyViolation.__name__ for _, kind in refused) >= 6, refused


def test_mysql_read_only_refuses_procedures_dumpfile_and_load_data(mysql_database, tmp_path):
    target = f"/tmp/dc-leak-{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(
        host=mysql_database["host"], port=mysql_database["port"], user=mysql_database["user"],
        database=mysql_database["database"], autocommit=True,
    )  # fmt: skip
    with conn.cursor() as cursor:
        cursor.execute("CREATE TABLE kept (id int)")
        cursor.execute("INSERT INTO kept VALUES (1), (2)")
        cursor.execute("CREATE PROCEDURE writer() BEGIN DELETE FROM kept; END")
        cursor.execute(
            "CREATE FUNCTION sneaky() RETURNS int MODIFIES SQL DATA "
            "BEGIN INSERT INTO kept VALUES (99); RETURN 1; END"
        )
        cursor.execute("CREATE SEQUENCE counter")
    attempts = [
        "CALL writer()",
        "DO sneaky()",
        f"SELECT 1 INTO DUMPFILE '{target}'",
        "LOAD DATA INFILE '/etc/hostname' INTO TABLE kept",
        "SET SESSION TRANSACTION READ WRITE",
        "SELECT NEXTVAL(counter)",
        "SELECT id FROM kept; DROP TABLE kept",
        "REPLACE INTO kept VALUES (3)",
        "HANDLER kept OPEN",
    ]
    with MysqlDriver().connect(_params("mysql", mysql_database), timeout=10) as session:
        for sql in attempts:
            with pytest.raises(QueryError):
                _run(session, sql)
    with conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM kept")
        assert cursor.fetchone()[0] == 2
    conn.close()
    assert not os.path.exists(target)

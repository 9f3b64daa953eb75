"""The app's pieces: settings precedence, paste entry point, sign-in and sign-out, session
cookie flags, security headers, HTML error pages."""

from __future__ import annotations

import pytest
from test_web_helpers import PASSWORD, ROOT, make_app, make_user, sign_in

from dancecat_web.config import app_settings
from dancecat_web.headers import CONTENT_SECURITY_POLICY


def test_settings_come_from_the_ini_under_the_environment(tmp_path):
    raw = {"dancecat.query_test_limit": "7", "dancecat.max_body_bytes": "1000"}
    env = {"DANCECAT_HOME": str(tmp_path), "DANCECAT_MAX_BODY_BYTES": "2000"}
    settings = app_settings(raw, environ=env)
    assert (settings.query_test_limit, settings.max_body_bytes) == (7, 2000)


def test_paste_main_builds_the_app_from_testing_ini(tmp_path, monkeypatch):
    from pyramid.paster import get_app

    monkeypatch.setenv("DANCECAT_HOME", str(tmp_path))
    app = get_app(str(ROOT / "testing.ini"), "main")
    import webtest

    assert webtest.TestApp(app).get("/api/v1/openapi.json").json["info"]["title"]


def test_sign_in_sets_a_hardened_cookie_and_sign_out_clears_it(runtime):
    user = make_user(runtime, "carol@example.com")
    app = make_app(runtime)
    form = app.get("/login?next=/api/v1/me").form
    form["email"], form["password"] = user.email, PASSWORD
    response = form.submit(status=303)
    assert response.headers["Location"].endswith("/api/v1/me")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "secure" not in cookie.lower()
    assert app.get("/api/v1/me").json["user"]["email"] == user.email
    token = app.get("/api/v1/me").json["csrf_token"]
    app.post("/logout", {"csrf_token": token}, status=303)
    app.get("/api/v1/me", status=401)


def test_secure_cookies_setting_marks_the_cookie_secure(tmp_path):
    from dancecat_core import migrations
    from dancecat_core.runtime import build_runtime
    from dancecat_core.settings import load_settings

    runtime = build_runtime(
        load_settings(environ={"DANCECAT_HOME": str(tmp_path), "DANCECAT_SECURE_COOKIES": "true"})
    )
    migrations.upgrade(runtime.engine)
    make_user(runtime, "dave@example.com")
    app = make_app(runtime)
    app.extra_environ = {"wsgi.url_scheme": "https", "HTTP_HOST": "localhost"}
    form = app.get("/login").form
    form["email"], form["password"] = "dave@example.com", PASSWORD
    response = form.submit(status=303, headers={"Origin": "https://localhost"})
    assert "secure" in response.headers["Set-Cookie"].lower()
    assert "Strict-Transport-Security" in response.headers
    runtime.engine.dispose()


def test_the_first_sign_in_registers_an_allowed_email(runtime):
    from dancecat_core.db import session_scope
    from dancecat_core.services import accounts

    with session_scope(runtime.session_factory) as session:
        accounts.allow_email(session, "new@example.com")
    app = make_app(runtime)
    sign_in(app, "new@example.com", "a brand new password", first=True)
    assert app.get("/api/v1/me").json["user"]["email"] == "new@example.com"


def test_refused_sign_ins_count_towards_the_lockout(runtime):
    user = make_user(runtime, "erin@example.com")
    app = make_app(runtime)
    for _ in range(runtime.settings.login_max_failures):
        form = app.get("/login").form
        form["email"], form["password"] = user.email, "wrong password!"
        page = form.submit(status=400)
        assert "wrong email or password" in page.text
    form = app.get("/login").form
    form["email"], form["password"] = user.email, PASSWORD
    assert "try again later" in form.submit(status=400).text


def test_sign_in_without_csrf_is_403(app_and_user):
    app, user = app_and_user
    app.post("/login", {"email": user.email, "password": PASSWORD}, status=403)


@pytest.mark.parametrize("target", ["https://evil.example", "//evil.example", "/\\evil"])
def test_next_never_leaves_the_site(runtime, target):
    user = make_user(runtime, "frank@example.com")
    app = make_app(runtime)
    form = app.get("/login", {"next": target}).form
    form["email"], form["password"] = user.email, PASSWORD
    assert form.submit(status=303).headers["Location"] == "http://localhost/"


@pytest.fixture
def app_and_user(runtime):
    return make_app(runtime), make_user(runtime, "gina@example.com")


@pytest.mark.parametrize("path", ["/login", "/api/v1/openapi.json", "/api/v1/jobs", "/nowhere"])
def test_security_headers_on_every_response(runtime, path):
    response = make_app(runtime).get(path, expect_errors=True)
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_html_errors_are_pages_not_tracebacks(app_and_user, monkeypatch):
    app, user = app_and_user
    page = app.get("/nowhere", status=404)
    assert page.content_type == "text/html" and "Traceback" not in page.text
    from dancecat_core.services import trackers

    def explode(*args, **kwargs):
        raise RuntimeError("internals")

    monkeypatch.setattr(trackers, "get", explode)
    page = app.get("/job/result/1/raw", headers=user.auth, status=500)
    assert page.content_type == "text/html"
    assert "internals" not in page.text and "Traceback" not in page.text

"""Accounts end to end: offboarding (disable, enable, remove, reset the password) through
the console, the Users screen and the API; sign-out that ends the session on the server;
first sign-in with the password typed twice; sign-in that answers unknown emails exactly
like registered ones (messages, lockout, time); and ``next`` after sign-in."""

from __future__ import annotations

import datetime as dt
import json
import statistics
import threading
import time
from pathlib import Path

import pytest
import webtest
from test_web_helpers import PASSWORD, dancecat, make_app, make_user, sign_in

from dancecat_core import migrations
from dancecat_core.console import main as console_main
from dancecat_core.db import session_scope
from dancecat_core.models import (
    AllowedEmail,
    ApiToken,
    Connection,
    Job,
    SignInThrottle,
    Tracker,
    User,
)
from dancecat_core.runtime import build_runtime
from dancecat_core.scheduler import check_due
from dancecat_core.services import accounts
from dancecat_core.settings import load_settings

NEW_PASSWORD = "a brand new password"


class Console:
    """``dancecat`` against a test's home, in this process (``console.main``, as the
    installed command runs it) through a config file of its own."""

    def __init__(self, home: Path, capsys: pytest.CaptureFixture[str]):
        self.config = home.parent / "dancecat.ini"
        self.config.write_text(f"[app:main]\nhome = {home}\n")
        self.capsys = capsys

    def run(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = console_main(["-c", str(self.config), *args])
        out = self.capsys.readouterr()
        return code, out.out, out.err

    def ok(self, *args: str) -> str:
        code, out, err = self.run(*args)
        assert code == 0, err
        return out

    def refused(self, *args: str) -> str:
        """The command failed with one line on stderr and no traceback; that line."""
        code, out, err = self.run(*args)
        assert code == 2, (code, out, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        return err.strip()


def copy_of(browser: webtest.TestApp, runtime) -> webtest.TestApp:
    """Another client holding a copy of ``browser``'s session cookie (a stolen cookie)."""
    thief = make_app(runtime)
    thief.set_cookie("dancecat_session", browser.cookies["dancecat_session"])
    return thief


def sign_in_page(app: webtest.TestApp, email: str, password: str, confirm: str = ""):
    form = app.get("/login").form
    form["email"], form["password"], form["confirm"] = email, password, confirm
    return form.submit(expect_errors=True)


def message(response) -> str:
    box = response.html.select_one("#signin-error")
    return box.get_text(strip=True) if box else ""


@pytest.fixture
def world(runtime, sqlite_chinook, capsys):
    """Alice (a member) owns a connection and a scheduled job; Bob is a member; Root is
    an admin. Alice has an API token and a signed-in browser."""
    app = make_app(runtime)
    alice = make_user(runtime, "alice@example.com")
    bob = make_user(runtime, "bob@example.com")
    root = make_user(runtime, "root@example.com", admin=True)
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
            "query": "SELECT 1 AS one",
            "schedules": [{"type": "daily", "start": "2031-01-01 09:00", "timezone": "UTC"}],
        },
        headers=alice.auth,
    ).json["job"]
    app.post(f"/api/v1/jobs/{job['id']}/runs", headers=alice.auth, status=202)
    browser = make_app(runtime)
    sign_in(browser, alice.email)
    return {
        "app": app,
        "alice": alice,
        "bob": bob,
        "root": root,
        "browser": browser,
        "console": Console(runtime.settings.home, capsys),
        "job": job["id"],
        "connection": connection["id"],
    }


# -- offboarding through the console -------------------------------------------------------


def test_disable_ends_every_session_and_token_at_once_and_keeps_the_data(world, runtime):
    app, alice, browser = world["app"], world["alice"], world["browser"]
    thief = copy_of(browser, runtime)
    thief.get("/api/v1/me", status=200)  # a copied cookie works while the session lives
    print(world["console"].ok("user", "disable", alice.email), end="")

    browser.get("/api/v1/me", status=401)
    thief.get("/api/v1/me", status=401)
    assert "/login" in browser.get("/jobs", status=302).location
    app.get("/api/v1/jobs", headers=alice.auth, status=401)
    app.get("/job/result/1/csv", headers=alice.auth, status=302)  # to the sign-in page
    # The right password does not sign a disabled user in (and only the right one says why).
    answer = sign_in_page(make_app(runtime), alice.email, PASSWORD)
    assert answer.status_int == 400 and message(answer) == accounts.DISABLED
    wrong = sign_in_page(make_app(runtime), alice.email, "not her password")
    assert message(wrong) == accounts.WRONG_EMAIL_OR_PASSWORD

    # Her data stays, and her schedule keeps running (documented in docs/API.md).
    with runtime.session_factory() as session:
        assert session.get(Job, world["job"]).owner_id == alice.id
        assert session.get(Connection, world["connection"]).deleted_at is None
    due = dt.datetime(2031, 1, 1, 9, 0, tzinfo=dt.UTC)
    claims = check_due(runtime, now=due)
    assert [claim.job_id for claim in claims if claim.tracker_id] == [world["job"]]

    listing = world["console"].ok("user", "list")
    assert f"{alice.email}\tno\tdisabled\t" in listing

    # Enabled again: she signs in with her password; the old token stays revoked.
    world["console"].ok("user", "enable", alice.email)
    sign_in(make_app(runtime), alice.email)
    app.get("/api/v1/jobs", headers=alice.auth, status=401)
    thief.get("/api/v1/me", status=401)  # the old session does not come back either


def test_user_list_has_a_header_and_json(world, runtime):
    """Through the installed command in a process of its own, as an operator runs it."""
    home = runtime.settings.home
    dancecat(home, "add-allowed-user", "invited@example.com")
    lines = dancecat(home, "user", "list").splitlines()
    assert lines[0].split("\t") == ["email", "admin", "status", "last_sign_in", "created"]
    rows = {line.split("\t")[0]: line.split("\t") for line in lines[1:]}
    assert set(rows) == {
        "alice@example.com", "bob@example.com", "root@example.com", "invited@example.com",
    }  # fmt: skip
    assert rows["root@example.com"][1:3] == ["yes", "active"]
    assert rows["invited@example.com"][1:4] == ["no", "no password", ""]
    as_json = json.loads(dancecat(home, "user", "list", "--json"))
    assert [row["email"] for row in as_json] == sorted(rows)
    assert {row["email"]: row["admin"] for row in as_json}["root@example.com"] is True
    assert all(set(row) == set(lines[0].split("\t")) for row in as_json)


def test_unknown_users_are_one_line_errors(world):
    cli = world["console"]
    for action in ("disable", "enable", "remove", "reset-password"):
        line = cli.refused("user", action, "nobody@example.com")
        assert line.startswith("error: no user nobody@example.com"), line
    line = cli.refused("user", "remove", "alice@example.com", "--transfer-to", "x@example.com")
    assert "no user x@example.com" in line


def test_remove_refuses_an_owner_unless_their_things_are_transferred(world, runtime):
    cli, alice, bob, app = world["console"], world["alice"], world["bob"], world["app"]
    gone = app.post_json(
        "/api/v1/connections",
        {
            "name": "old-db",
            "driver": "sqlite",
            "database": str(runtime.settings.home.parent / "old.sqlite"),
        },
        headers=alice.auth,
    ).json["connection"]["id"]
    app.delete(f"/api/v1/connections/{gone}", headers=alice.auth, status=204)
    line = cli.refused("user", "remove", alice.email)
    assert "still owns 1 job and 1 connection" in line and "--transfer-to EMAIL" in line
    assert cli.refused("user", "remove", alice.email, "--transfer-to", alice.email).endswith(
        "pick another user than the one removed"
    )
    cli.ok("user", "disable", bob.email)
    assert "bob@example.com is disabled" in cli.refused(
        "user", "remove", alice.email, "--transfer-to", bob.email
    )
    cli.ok("user", "enable", bob.email)
    with runtime.session_factory() as session:  # nothing moved yet
        assert session.get(Job, world["job"]).owner_id == alice.id
        assert accounts.find_user(session, alice.email) is not None

    done = cli.ok("user", "remove", alice.email, "--transfer-to", bob.email)
    assert done.strip() == (
        "alice@example.com removed; 1 job and 1 connection transferred to bob@example.com"
    )
    with runtime.session_factory() as session:
        assert accounts.find_user(session, alice.email) is None
        assert session.query(AllowedEmail).filter_by(email=alice.email).count() == 0
        assert session.query(ApiToken).filter_by(user_id=alice.id).count() == 0
        assert session.get(Job, world["job"]).owner_id == bob.id
        assert session.get(Connection, world["connection"]).owner_id == bob.id
        assert session.get(Connection, gone).owner_id == bob.id  # deleted ones move too
        run = session.query(Tracker).filter_by(job_id=world["job"]).one()
        assert run.triggered_by_id is None  # the run stays, no longer naming her
    # Bob now changes the job; Alice's token, session and email are gone.
    bobs = make_app(runtime)
    bob_csrf = sign_in(bobs, bob.email)
    bobs.patch_json(
        f"/api/v1/jobs/{world['job']}", {"name": "bobs now"}, headers={"X-CSRF-Token": bob_csrf}
    )
    app.get("/api/v1/me", headers=alice.auth, status=401)
    world["browser"].get("/api/v1/me", status=401)
    for confirm in ("", NEW_PASSWORD):
        answer = sign_in_page(make_app(runtime), alice.email, NEW_PASSWORD, confirm)
        assert message(answer) == accounts.WRONG_EMAIL_OR_PASSWORD
    # Allowing her again starts afresh: a new account that owns nothing.
    cli.ok("add-allowed-user", alice.email)
    browser = make_app(runtime)
    sign_in(browser, alice.email, NEW_PASSWORD, first=True)
    assert browser.get("/api/v1/jobs").json["jobs"] == []


def test_removing_someone_who_owns_nothing_takes_them_off_the_allowed_list(world, runtime):
    cli = world["console"]
    cli.ok("add-allowed-user", "invited@example.com")
    assert cli.ok("user", "remove", "invited@example.com").strip() == (
        "invited@example.com removed"
    )
    answer = sign_in_page(make_app(runtime), "invited@example.com", NEW_PASSWORD, NEW_PASSWORD)
    assert message(answer) == accounts.WRONG_EMAIL_OR_PASSWORD
    assert "invited@example.com" not in cli.ok("user", "list")


def test_token_create_refuses_disabled_users_and_users_without_a_password(world):
    cli = world["console"]
    cli.ok("add-allowed-user", "invited@example.com")
    assert "has no password yet" in cli.refused("token", "create", "invited@example.com")
    cli.ok("user", "disable", "bob@example.com")
    assert "is disabled" in cli.refused("token", "create", "bob@example.com")


# -- sign-out ends the session on the server ----------------------------------------------


def test_sign_out_ends_the_session_for_copied_cookies_too(world, runtime):
    browser, alice = world["browser"], world["alice"]
    thief = copy_of(browser, runtime)
    other_device = make_app(runtime)
    sign_in(other_device, alice.email)
    thief.get("/api/v1/me", status=200)
    csrf = browser.get("/api/v1/me").json["csrf_token"]
    browser.post("/logout", {"csrf_token": csrf}, status=303)
    thief.get("/api/v1/me", status=401)
    assert "/login" in thief.get("/jobs", status=302).location
    # Signing out signs this user out everywhere (one generation per user).
    other_device.get("/api/v1/me", status=401)
    # API tokens are not sessions: they keep working until revoked.
    world["app"].get("/api/v1/me", headers=alice.auth, status=200)
    sign_in(browser, alice.email)  # and signing in again works


# -- password reset and the first sign-in ---------------------------------------------------


def test_first_sign_in_asks_for_the_password_twice(runtime):
    with session_scope(runtime.session_factory) as session:
        accounts.allow_email(session, "new@example.com")
    app = make_app(runtime)
    differ = sign_in_page(app, "new@example.com", NEW_PASSWORD, NEW_PASSWORD + "!")
    assert differ.status_int == 400 and message(differ) == accounts.PASSWORDS_DIFFER
    assert differ.html.select_one("details.first-sign-in").has_attr("open")
    # Without the confirmation nothing is set either (and the answer names no account).
    once = sign_in_page(app, "new@example.com", NEW_PASSWORD)
    assert message(once) == accounts.WRONG_EMAIL_OR_PASSWORD
    with runtime.session_factory() as session:
        assert accounts.find_user(session, "new@example.com").password_hash is None
    sign_in(app, "new@example.com", NEW_PASSWORD, first=True)
    assert app.get("/api/v1/me").json["user"]["email"] == "new@example.com"
    # Once set, a second "first sign-in" cannot overwrite it.
    takeover = sign_in_page(
        make_app(runtime), "new@example.com", "another password!", "another password!"
    )
    assert message(takeover) == accounts.WRONG_EMAIL_OR_PASSWORD


def test_reset_password_from_the_console(world, runtime):
    cli, alice, browser = world["console"], world["alice"], world["browser"]
    cli.ok("user", "reset-password", alice.email)
    browser.get("/api/v1/me", status=401)  # sessions ended
    world["app"].get("/api/v1/me", headers=alice.auth, status=200)  # tokens kept
    old = sign_in_page(make_app(runtime), alice.email, PASSWORD)
    assert message(old) == accounts.WRONG_EMAIL_OR_PASSWORD
    assert "no password" in cli.ok("user", "list")
    fresh = make_app(runtime)
    sign_in(fresh, alice.email, NEW_PASSWORD, first=True)
    assert fresh.get("/api/v1/me").json["user"]["email"] == alice.email
    assert message(sign_in_page(make_app(runtime), alice.email, PASSWORD)) == (
        accounts.WRONG_EMAIL_OR_PASSWORD
    )


# -- the Users screen ----------------------------------------------------------------------


def test_users_screen_disables_enables_resets_and_removes(world, runtime):
    alice, bob, root, app = world["alice"], world["bob"], world["root"], world["app"]
    admin = make_app(runtime)
    csrf = sign_in(admin, root.email)
    page = admin.get("/users")
    rows = {
        row.select_one("td").get_text(" ", strip=True): row for row in page.html.select("tbody tr")
    }
    assert set(rows) == {"alice@example.com", "bob@example.com", "root@example.com you"}
    assert rows["root@example.com you"].select("form") == []  # no buttons on yourself

    admin.post(f"/users/{alice.id}/disable", {"csrf_token": csrf}, status=303)
    app.get("/api/v1/me", headers=alice.auth, status=401)
    world["browser"].get("/api/v1/me", status=401)
    assert "disabled" in admin.get("/users").text
    admin.post(f"/users/{alice.id}/enable", {"csrf_token": csrf}, status=303)
    sign_in(make_app(runtime), alice.email)

    bobs = make_app(runtime)
    sign_in(bobs, bob.email)
    admin.post(f"/users/{bob.id}/reset-password", {"csrf_token": csrf}, status=303)
    bobs.get("/api/v1/me", status=401)
    sign_in(make_app(runtime), bob.email, NEW_PASSWORD, first=True)

    # Not on yourself: the admin stays signed in and active.
    flashed = admin.post(f"/users/{root.id}/disable", {"csrf_token": csrf}, status=303).follow()
    assert "you cannot disable your own account here" in flashed.text
    admin.post(f"/users/{root.id}/remove", {"csrf_token": csrf}, status=422)
    flashed = admin.post(f"/users/{root.id}/reset-password", {"csrf_token": csrf}).follow()
    assert "you cannot reset the password of your own account here" in flashed.text
    admin.get("/api/v1/me", status=200)

    # Remove: the confirmation page says what she owns and asks who takes it over.
    confirm = admin.get(f"/users/{alice.id}/remove")
    assert "owns 1 job and 1 connection" in confirm.text
    options = [o["value"] for o in confirm.html.select("select#to option") if o["value"]]
    assert options == [str(bob.id), str(root.id)]
    missing = admin.post(f"/users/{alice.id}/remove", {"csrf_token": csrf}, status=422)
    assert "still owns 1 job and 1 connection" in missing.text
    with runtime.session_factory() as session:
        assert session.get(User, alice.id) is not None
    done = admin.post(f"/users/{alice.id}/remove", {"csrf_token": csrf, "to": str(bob.id)})
    assert "alice@example.com removed" in done.follow().text
    with runtime.session_factory() as session:
        assert session.get(User, alice.id) is None
        assert session.get(Job, world["job"]).owner_id == bob.id

    # Inviting from the screen, like `dancecat add-allowed-user`.
    admin.post("/users", {"csrf_token": csrf, "email": "Carol@Example.com"}, status=303)
    refused_invite = admin.post("/users", {"csrf_token": csrf, "email": "not an email"}, status=422)
    assert "not a valid email address" in refused_invite.text
    sign_in(make_app(runtime), "carol@example.com", NEW_PASSWORD, first=True)
    # The console may do to an admin what the screen does not let them do to themselves.
    world["console"].ok("user", "disable", root.email)
    admin.get("/api/v1/me", status=401)


# -- sign-in tells nobody which accounts exist ---------------------------------------------


def test_unknown_emails_get_the_same_messages_and_the_same_lockout(world, runtime):
    """Each attempt's page is the same for a real account and an unknown email, through
    the lockout, which an unknown email reaches after the same number of failures."""
    limit = runtime.settings.login_max_failures
    pages = {}
    for email in ("alice@example.com", "nobody@example.com"):
        app = make_app(runtime)
        answers = [sign_in_page(app, email, "wrong password!") for _ in range(limit)]
        answers.append(sign_in_page(app, email, PASSWORD))  # even the right one, now
        pages[email] = [(a.status_int, message(a)) for a in answers]
    assert pages["alice@example.com"] == pages["nobody@example.com"]
    assert pages["nobody@example.com"][-1] == (400, accounts.LOCKED_OUT)
    assert pages["nobody@example.com"][0] == (400, accounts.WRONG_EMAIL_OR_PASSWORD)
    # Other spellings of the same email share its counter.
    shouted = sign_in_page(make_app(runtime), "  NoBody@Example.COM ", "x")
    assert message(shouted) == accounts.LOCKED_OUT
    # Bob was not locked by any of it.
    sign_in(make_app(runtime), "bob@example.com")


def test_lockout_ends_after_the_lockout_period(tmp_path):
    lockout = 6
    environ = {
        "DANCECAT_HOME": str(tmp_path / "home"),
        "DANCECAT_LOGIN_MAX_FAILURES": "2",
        "DANCECAT_LOGIN_LOCKOUT_SECONDS": str(lockout),
    }
    runtime = build_runtime(load_settings(environ=environ))
    migrations.upgrade(runtime.engine)
    try:
        make_user(runtime, "erin@example.com")
        app = make_app(runtime)
        for email in ("erin@example.com", "ghost@example.com"):
            sign_in_page(app, email, "wrong password!")
            started = time.monotonic()
            sign_in_page(app, email, "wrong password!")  # locks until <= now + lockout
            assert message(sign_in_page(app, email, PASSWORD)) == accounts.LOCKED_OUT
        time.sleep(max(0.0, started + lockout + 0.2 - time.monotonic()))
        sign_in(make_app(runtime), "erin@example.com")
        assert message(sign_in_page(app, "ghost@example.com", "x")) == (
            accounts.WRONG_EMAIL_OR_PASSWORD
        )
    finally:
        runtime.engine.dispose()


def test_unknown_emails_cost_the_same_time_as_real_ones(tmp_path):
    """Medians of several sign-ins each: a wrong password for a real account, an unknown
    email, an allowed email with no password yet, and a malformed email. They all do one
    argon2 verification, so their medians stay within a factor of two of each other (an
    early return for unknown emails makes them differ twentyfold)."""
    environ = {"DANCECAT_HOME": str(tmp_path / "home"), "DANCECAT_LOGIN_MAX_FAILURES": "1000"}
    runtime = build_runtime(load_settings(environ=environ))
    migrations.upgrade(runtime.engine)
    try:
        make_user(runtime, "real@example.com")
        with session_scope(runtime.session_factory) as session:
            accounts.allow_email(session, "invited@example.com")
        app = make_app(runtime)
        csrf = app.get("/login").form["csrf_token"].value
        kinds = {
            "real": "real@example.com",
            "unknown": "nobody@example.com",
            "invited": "invited@example.com",
            "malformed": "not-an-email",
        }

        def attempt(email: str) -> float:
            started = time.perf_counter()
            app.post(
                "/login",
                {"csrf_token": csrf, "email": email, "password": "wrong password!"},
                status=400,
            )
            return time.perf_counter() - started

        for email in kinds.values():
            attempt(email)  # warm up (the dummy hash is made on first use)
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _ in range(7):
            for kind, email in kinds.items():  # interleaved: load hits every kind alike
                times[kind].append(attempt(email))
        medians = {kind: statistics.median(values) for kind, values in times.items()}
        print(f"\nsign-in medians (s): { {k: round(v, 4) for k, v in medians.items()} }")
        for kind in ("unknown", "invited", "malformed"):
            ratio = medians[kind] / medians["real"]
            assert 0.5 < ratio < 2.0, (kind, medians)
    finally:
        runtime.engine.dispose()


# -- where sign-in sends you next -----------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/\r\nSet-Cookie: evil=1",
        "/jobs\nLocation: https://evil.example",
        "/%0d%0aSet-Cookie:evil=1",
        "/%0D%0ALocation:%20https://evil.example",
        "/\x00",
        "/\x7f",
        "/\t/evil.example",
        "/ /evil.example",
        " /evil.example",
        "/\u2028",
        "/日本",
        "//evil.example",
        "///evil.example",
        "\\\\evil.example",
        "/\\evil.example",
        "/%5Cevil.example",
        "/%2F/evil.example",
        "https://evil.example",
        "HTTPS:evil.example",
        "javascript:alert(1)",
        "evil.example",
    ],
)
def test_a_bad_next_goes_home_never_a_500_or_away(runtime, target):
    user = make_user(runtime, "frank@example.com")
    app = make_app(runtime)
    page = app.get("/login", {"next": target})
    assert page.form["next"].value == "/"
    form = app.get("/login").form
    form["email"], form["password"] = user.email, PASSWORD
    form["next"].force_value(target)
    answer = form.submit(status=303)
    assert answer.headers["Location"] == "http://localhost/"


@pytest.mark.parametrize("target", ["/jobs", "/jobs/7?tab=runs&x=a%20b", "/api/v1/me"])
def test_a_good_next_is_kept(runtime, target):
    user = make_user(runtime, "gina@example.com")
    app = make_app(runtime)
    form = app.get("/login", {"next": target}).form
    assert form["next"].value == target
    form["email"], form["password"] = user.email, PASSWORD
    assert form.submit(status=303).headers["Location"] == "http://localhost" + target


def test_concurrent_first_failures_for_one_email_both_count(tmp_path, pg_database):
    """Two sign-ins failing at once for a new email on PostgreSQL: the second one's insert
    waits for the first's commit, collides with it, and counts on the same row instead
    of failing with an error."""
    environ = {"DANCECAT_HOME": str(tmp_path / "home"), "DANCECAT_DATABASE_URL": pg_database["url"]}
    runtime = build_runtime(load_settings(environ=environ))
    migrations.upgrade(runtime.engine)
    try:
        first = runtime.session_factory()
        with pytest.raises(accounts.SignInRefused):
            accounts.sign_in(first, runtime.settings, "racer@example.com", "wrong password!")
        outcome: list[BaseException | None] = []

        def second() -> None:
            with runtime.session_factory() as session:
                try:
                    accounts.sign_in(session, runtime.settings, "racer@example.com", "wrong!!")
                except BaseException as exc:  # handed to the test below
                    outcome.append(exc)
                session.commit()

        racer = threading.Thread(target=second)
        racer.start()
        racer.join(timeout=3)
        assert racer.is_alive()  # blocked on the first one's uncommitted row
        first.commit()
        first.close()
        racer.join(timeout=60)
        assert len(outcome) == 1 and isinstance(outcome[0], accounts.SignInRefused)
        with runtime.session_factory() as session:
            row = session.query(SignInThrottle).filter_by(email="racer@example.com").one()
            assert row.failures == 2
    finally:
        runtime.engine.dispose()

"""Every screen at every width, in a real headless Chromium against a real ``dancecat serve``.

At 320, 375, 768, 1024 and 1280 px: no page scrolls sideways, the Jobs table's Run, Edit
and Delete and the runs' Notifications (with a failed one's reason as text) can be reached,
the run-history chart's labels are 11 px or more as drawn, and run cards name the time
zone of their times. Run cards are compact on a phone: labels beside their values, not
above. The Jobs and job screens are saved to ``docs/screenshots/`` at 375, 768 and 1024 px
(the 1280 px ones come from ``tests/test_browser.py``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from conftest import CHINOOK_SQLITE
from test_browser import SHOTS, WAIT_MS, chromium  # noqa: F401 - the fixture
from test_web_helpers import LiveServer, dancecat, serve

pytestmark = pytest.mark.browser

EMAIL = "wanda@example.com"
PASSWORD = "a long password for every width"
JOB = "Artists by name, for the label's weekly report"
QUERY = "SELECT ArtistId, Name FROM Artist ORDER BY Name"
RUNS = 9
ZONE = "Europe/Paris"
WIDTHS = (320, 375, 768, 1024, 1280)
SCREENS = {
    "home": "/",
    "jobs": "/jobs",
    "job": "/jobs/1",
    "job form": "/jobs/new",
    "job edit": "/jobs/1/edit",
    "connections": "/connections",
    "connection form": "/connections/new",
    "tokens": "/tokens",
    "users": "/users",
    "404": "/no/such/page",
}
# The Jobs screen with 9 runs (each with a failed notification) on a 375 px phone: its
# height at most (5,154 px with a label above each value; 4,304 px with labels beside), and
# one run card's (about 520 px before, 395 after).
PHONE_JOBS_PAGE = 4_500
PHONE_RUN_CARD = 420


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    """An admin, a shared SQLite connection and a job mailed to a recipient (mail is not
    configured, so each run's notification fails with a reason) run 9 times."""
    root = tmp_path_factory.mktemp("widths")
    home = root / "home"
    home.mkdir()
    database = root / "chinook.sqlite"
    shutil.copyfile(CHINOOK_SQLITE, database)
    dancecat(home, "init")
    dancecat(home, "add-allowed-user", EMAIL, "--admin")
    dancecat(home, "connection", "add", "chinook", "--driver", "sqlite",
             "--database", str(database), "--shared")
    dancecat(home, "job", "add", JOB, "--connection", "chinook", "--sql", QUERY, "--shared",
             "--recipient", "weekly-report-readers@example.com")
    for _ in range(RUNS):
        dancecat(home, "job", "run", JOB)
    yield from serve(home, env={"DANCECAT_TIMEZONE": ZONE})


@pytest.fixture(scope="module")
def signed_in(chromium, server):  # noqa: F811 - the fixture
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto(server.url + "/login")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_text("First sign-in, or your password was reset?").click()
    page.get_by_label("Confirm password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in or sign up").click()
    page.wait_for_url("**/")
    page.close()
    yield context
    context.close()


@pytest.fixture
def page(signed_in):
    page = signed_in.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    page.close()
    assert errors == [], errors


def sideways(page) -> int:
    """How far the page scrolls sideways (0: not at all)."""
    return page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")


@pytest.mark.parametrize("width", WIDTHS)
def test_no_screen_scrolls_sideways(page, chromium, server, width):  # noqa: F811
    page.set_viewport_size({"width": width, "height": 800})
    for screen, path in SCREENS.items():
        page.goto(server.url + path)
        assert sideways(page) <= 0, f"{screen} scrolls {sideways(page)} px sideways at {width}"
    context = chromium.new_context(viewport={"width": width, "height": 800})
    signed_out = context.new_page()
    signed_out.goto(server.url + "/login")
    assert sideways(signed_out) <= 0, f"sign-in scrolls sideways at {width}"
    context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_actions_and_notifications_can_be_reached(page, server, width):
    """Run, Edit, Delete and every run's notification (its failure reason as text) are on
    the page, not clipped away, and take a click."""
    page.set_viewport_size({"width": width, "height": 800})
    page.goto(server.url + "/jobs")
    for name in (f"Run {JOB}", f"Edit {JOB}", f"Delete {JOB}"):
        page.get_by_role("button" if name.startswith("Run") else "link", name=name).click(
            trial=True
        )
    notes = page.locator("#trackers td[data-label=Notifications]")
    assert notes.count() == RUNS
    for cell in notes.all():
        cell.scroll_into_view_if_needed()
        box = cell.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
        reason = cell.locator(".note-reason", has_text="email is not configured")
        assert reason.is_visible()
        assert reason.evaluate("el => parseFloat(getComputedStyle(el).fontSize)") >= 11


@pytest.mark.parametrize("width", WIDTHS)
def test_chart_labels_are_readable(page, server, width):
    """Every label of the run-history chart is 11 px or more on screen and inside the
    chart's box."""
    page.set_viewport_size({"width": width, "height": 800})
    page.goto(server.url + "/jobs/1")
    labels = page.evaluate(
        """() => {
          const box = document.querySelector('figure.chart').getBoundingClientRect();
          return [...document.querySelectorAll('figure.chart text')].map(t => {
            const r = t.getBoundingClientRect(), m = t.getScreenCTM();
            return {text: t.textContent,
                    px: parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b),
                    inside: r.left >= box.left && r.right <= box.right
                            && r.top >= box.top && r.bottom <= box.bottom};
          });
        }"""
    )
    assert len(labels) >= 12, labels
    small = [label for label in labels if label["px"] < 11]
    assert small == [], small
    outside = [label["text"] for label in labels if not label["inside"]]
    assert outside == []
    assert page.locator("figure.chart rect.bar").count() == RUNS


@pytest.mark.parametrize("width", [320, 375, 768])
def test_run_cards_name_the_time_zone(page, server, width):
    page.set_viewport_size({"width": width, "height": 800})
    for path in ("/jobs", "/jobs/1"):
        page.goto(server.url + path)
        cell = page.locator("#trackers td").filter(has=page.locator("time")).first
        label = cell.evaluate("td => getComputedStyle(td, '::before').content")
        assert ZONE in label, label


def test_run_cards_are_compact_on_a_phone(page, server):
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(server.url + "/jobs")
    height = page.evaluate("document.scrollingElement.scrollHeight")
    assert height <= PHONE_JOBS_PAGE, f"the Jobs screen is {height}px long at 375 px"
    for path in ("/jobs", "/jobs/1"):
        page.goto(server.url + path)
        card = page.locator("#trackers tr").first.bounding_box()
        assert card["height"] <= PHONE_RUN_CARD, (path, card)


@pytest.mark.parametrize("width", [375, 768, 1024])
def test_screenshots(page, server, width):
    page.set_viewport_size({"width": width, "height": 900})
    SHOTS.mkdir(parents=True, exist_ok=True)
    for name, path in (("jobs", "/jobs"), ("job", "/jobs/1")):
        page.goto(server.url + path)
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)

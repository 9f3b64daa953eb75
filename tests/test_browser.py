"""End to end in a real headless Chromium against a real ``dancecat serve``.

One story: sign up, add a PostgreSQL connection to Chinook and test it, create
a job and preview it, add a schedule and a recipient, save, Run, watch the tracker reach
Success without reloading, download CSV and XLSX and check their rows against the
database. Each main screen is saved to ``docs/screenshots/`` on the way (the README shows
them). Debian's ``chromium`` is driven by Playwright through ``executable_path``; with
``CI=true`` a missing browser fails the test instead of skipping it.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import psycopg2
import pytest
from test_web_helpers import ROOT, LiveServer, dancecat, serve

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("DANCECAT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IN_CI = os.environ.get("CI", "").lower() == "true"
SHOTS = ROOT / "docs" / "screenshots"
EMAIL = "ana@example.com"
PASSWORD = "a long browser password"
QUERY = (
    "SELECT track_id, name, composer, milliseconds\n"
    "FROM track\nWHERE genre_id = 1\nORDER BY track_id"
)
HEADER = ["track_id", "name", "composer", "milliseconds"]
WAIT_MS = 30_000


def _missing(why: str) -> None:
    if IN_CI:
        pytest.fail(f"the browser test cannot run: {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def chromium() -> Iterator:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    home = tmp_path / "home"
    home.mkdir()
    dancecat(home, "init")
    dancecat(home, "add-allowed-user", EMAIL)
    yield from serve(home, env={"DANCECAT_TIMEZONE": "Europe/Paris"})


def _rows_from_db(pg: dict) -> list[list[str]]:
    with (
        psycopg2.connect(
            host=pg["host"], port=pg["port"], user=pg["user"], dbname=pg["database"]
        ) as conn,
        conn.cursor() as cursor,
    ):
        cursor.execute(QUERY)
        return [["" if value is None else str(value) for value in row] for row in cursor]


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def open_editor(page) -> None:
    """Into the query editor. The page builds it the first time the query's textarea takes
    focus (it is not part of the page load): click the textarea, wait for the editor, which
    then has the focus."""
    page.locator("#query").click()
    page.locator(".CodeMirror").wait_for()
    page.wait_for_function("() => document.activeElement.closest('.CodeMirror') !== null")


def _sticky_bar_covers_nothing(page) -> None:
    """At 900 px, each field of the job form that Tab reaches stops above the sticky
    Save/Run bar, not under it."""
    size = page.viewport_size
    page.set_viewport_size({"width": 900, "height": 900})
    bar = page.locator(".sticky-actions")
    for selector in ("#shared", "[data-recipients] input[name=recipients] >> nth=-1", "#name"):
        field = page.locator(selector)
        field.focus()
        box, top = field.bounding_box(), bar.bounding_box()["y"]
        assert box["y"] + box["height"] <= top + 0.5, f"the bar covers {selector}"
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    # At the very end the bar sits after the last field.
    last = page.locator("[data-add=schedule]").bounding_box()
    assert last["y"] + last["height"] <= bar.bounding_box()["y"] + 0.5
    page.set_viewport_size(size)


def test_the_seed_story_in_a_real_browser(chromium, server, pg_chinook):
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    page.set_default_timeout(WAIT_MS)
    nav = page.get_by_role("navigation", name="Main")

    # Sign up: the first sign-in of an allowed email sets the password.
    page.goto(server.url + "/jobs")
    assert "/login" in page.url
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_text("First sign-in, or your password was reset?").click()
    page.get_by_label("Confirm password").fill(PASSWORD)
    shot(page, "sign-in")
    page.get_by_role("button", name="Sign in or sign up").click()
    page.wait_for_url("**/jobs")

    # A PostgreSQL connection to Chinook, tested before saving.
    nav.get_by_role("link", name="DB Connection").click()
    page.get_by_role("link", name="New connection").first.click()
    page.get_by_label("Name").fill("Chinook")
    page.get_by_label("Driver").select_option("postgresql")
    page.get_by_label("Host").fill(str(pg_chinook["host"]))
    page.get_by_label("Port").fill(str(pg_chinook["port"]))
    page.get_by_label("Database").fill(pg_chinook["database"])
    page.get_by_label("User").fill(pg_chinook["user"])
    page.get_by_role("button", name="Test Connection").click()
    page.locator("#check-result .ok-box").wait_for()
    assert "Connected in" in page.locator("#check-result").inner_text()
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/connections")
    assert page.locator("table strong").get_by_text("Chinook", exact=True).count() == 1
    shot(page, "connections")

    # A job: name, annotation, query in the editor, preview before saving.
    nav.get_by_role("link", name="Jobs", exact=True).click()
    page.get_by_role("link", name="New job").first.click()
    page.get_by_label("Name", exact=True).fill("Rock tracks")
    page.get_by_label("Annotation").fill("All **rock** tracks, for the label's weekly report.")
    page.get_by_label("Connection").select_option(label="Chinook")
    open_editor(page)
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(QUERY)
    assert page.locator(".CodeMirror-linenumber").count() >= 4
    page.get_by_label("Timeout (seconds)").fill("120")
    page.get_by_role("button", name="Run preview").click()
    page.locator("#preview").wait_for()
    assert page.locator("#preview table").count() == 1, page.inner_text("#preview-slot")
    preview_text = page.locator("#preview").inner_text()
    assert "nothing was saved" in preview_text
    assert page.locator("#preview tbody tr").count() == 100  # QUERY_TEST_LIMIT
    # Column names exactly as the query named them (no CSS upper-casing).
    headers = page.locator("#preview thead th")
    assert headers.all_inner_texts() == HEADER
    assert headers.first.evaluate("th => getComputedStyle(th).textTransform") == "none"

    # A daily schedule (next runs appear as it is filled in) and a recipient.
    page.get_by_role("button", name="New schedule").click()
    block = page.locator("fieldset.schedule").last
    block.get_by_label("Schedule type").select_option("daily")
    block.get_by_label("Start on").fill("2030-01-07T09:30")
    block.get_by_label("Time zone").fill("Europe/Paris")
    block.locator("[data-role=next] li").first.wait_for()
    assert "2030-01-07 09:30 CET" in block.locator("[data-role=next]").inner_text()
    page.get_by_role("button", name="Add recipient").click()
    page.locator("[data-recipients] input[name=recipients]").last.fill("reports@example.com")
    _sticky_bar_covers_nothing(page)
    shot(page, "job-form")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url("**/jobs/*")
    assert page.locator(".markdown strong").inner_text() == "rock"
    assert "reports@example.com" in page.inner_text("main")
    assert "next run 2030-01-07 09:30 CET" in page.inner_text("main")

    # Run from the list; the tracker appears at once and reaches Success by itself.
    nav.get_by_role("link", name="Jobs", exact=True).click()
    page.get_by_role("button", name="Run Rock tracks").click()
    row = page.locator("#trackers tr").first
    row.wait_for()
    page.wait_for_function(
        "() => document.querySelector('#trackers tr')?.dataset.finished === 'true'",
        timeout=WAIT_MS,
    )
    assert row.locator(".status").inner_text() == "Success", row.inner_text()
    expected = _rows_from_db(pg_chinook)
    assert row.locator("td[data-label=Rows]").inner_text() == f"{len(expected):,}"
    page.reload()  # only for the screenshot: the job's latest-result links too
    shot(page, "jobs")
    row = page.locator("#trackers tr").first

    # Downloads from the tracker row match the database.
    with page.expect_download() as csv_download:
        row.get_by_role("link", name="CSV").click()
    with open(csv_download.value.path(), encoding="utf-8", newline="") as handle:
        got = list(csv.reader(handle))
    assert got[0] == HEADER
    assert got[1:] == expected

    with page.expect_download() as xlsx_download:
        row.get_by_role("link", name="XLSX").click()
    sheet = openpyxl.load_workbook(io.BytesIO(Path(xlsx_download.value.path()).read_bytes()))
    values = [
        ["" if value is None else str(value) for value in cells]
        for cells in sheet.active.iter_rows(values_only=True)
    ]
    assert values[0] == HEADER
    assert values[1:] == expected

    # The job page with its run history chart; the tokens page.
    page.get_by_role("link", name="Rock tracks").first.click()
    page.locator("figure.chart svg rect.bar").first.wait_for()
    # A second run, from the job page's own button, for the history and its chart.
    page.get_by_role("button", name="Run now").click()
    page.locator("#trackers tr").nth(1).wait_for()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#trackers tr')]"
        ".every(row => row.dataset.finished === 'true')",
        timeout=WAIT_MS,
    )
    page.reload()
    assert page.locator("figure.chart svg rect.bar").count() == 2
    shot(page, "job")
    nav.get_by_role("link", name="API tokens").click()
    page.get_by_label("Token name").fill("sales dashboard")
    page.get_by_role("button", name="Create token").click()
    assert len(page.locator("#new-token").input_value()) > 20
    name_box = page.locator("#name").bounding_box()
    button_box = page.get_by_role("button", name="Create token").bounding_box()
    middle = abs(
        (name_box["y"] + name_box["height"] / 2) - (button_box["y"] + button_box["height"] / 2)
    )
    assert middle <= 2, f"'Create token' is {middle:.0f}px off its input's row"
    shot(page, "tokens")

    # Phone width: the jobs list still works (stacked rows, no sideways scrolling).
    page.set_viewport_size({"width": 390, "height": 844})
    nav.get_by_role("link", name="Jobs", exact=True).click()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"the page scrolls sideways at phone width ({width}px)"

    assert errors == [], errors
    context.close()

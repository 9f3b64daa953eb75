"""An original DanceCats installation, imported, works in a real browser: its user signs in
with the original's password, runs an imported job, and an imported schedule fires, with
the original's database on each of SQLite, MariaDB and PostgreSQL (``import-dancecats``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import dancecats_original as original
import pytest
import sqlalchemy as sa
from test_browser import WAIT_MS, chromium  # noqa: F401 - the fixture
from test_web_helpers import LiveServer, dancecat, serve

pytestmark = pytest.mark.browser

# The scheduler looks often, so a schedule due in a minute or two fires in the test's time.
CHECK_SECONDS = "5"


@pytest.fixture(params=["sqlite", "mysql", "postgresql"])
def imported(request, tmp_path: Path) -> Iterator[LiveServer]:
    """An original installation whose hourly schedule is due within three minutes, imported
    into a fresh home that then serves with its embedded worker."""
    pg = request.getfixturevalue("pg_database")  # what the imported connection queries
    if request.param == "sqlite":
        url = built = f"sqlite:///{tmp_path / 'dancecats.db'}"
    elif request.param == "mysql":
        built = request.getfixturevalue("mysql_database")["url"]
        url = built.replace("+pymysql", "")  # as the original's config wrote it (MySQLdb)
    else:
        url = built = pg["url"]
    original.build(built, pg=pg, schedule_type=original.HOURLY)
    due = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=150)).replace(
        second=0, microsecond=0, tzinfo=None
    )
    with sa.create_engine(built).begin() as db:  # as the original stores it: naive, local
        db.execute(
            original.schedule.update()
            .where(original.schedule.c.id == 1)
            .values(minuteOfHour=due.minute, hourOfDay=due.hour, nextRun=due)
        )
    config = tmp_path / "config.cfg"
    original.config_file(config, url)
    home = tmp_path / "home"
    home.mkdir()
    dancecat(home, "init")
    out = dancecat(
        home, "import-dancecats", "--from", url, "--config", str(config), "--timezone", "UTC"
    )
    assert f"hourly from {due:%Y-%m-%d %H:%M} UTC" in out, out
    yield from serve(home, env={"DANCECAT_FREQUENCY_INTERVAL_SECONDS": CHECK_SECONDS})


def _finished(page, count: int) -> None:
    page.wait_for_function(
        "n => [...document.querySelectorAll('#trackers tr[data-finished=true]')].length >= n",
        arg=count,
        timeout=WAIT_MS,
    )


def test_an_imported_user_runs_an_imported_job_and_its_schedule_fires(
    chromium,  # noqa: F811 - the fixture imported above
    imported,
):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(WAIT_MS)

    # The original's password works (its hash was kept).
    page.goto(imported.url + "/jobs")
    page.get_by_label("Email").fill("alice@example.com")
    page.get_by_label("Password", exact=True).fill(original.ALICE_PASSWORD)
    page.get_by_role("button", name="Sign in or sign up").click()
    page.wait_for_url("**/jobs")

    # The imported job runs on its imported connection.
    page.get_by_role("link", name="Daily numbers").first.click()
    page.wait_for_url("**/jobs/*")
    assert "what the boss reads at nine" in page.inner_text("main")
    page.get_by_role("button", name="Run now").click()
    page.locator("#trackers tr").first.wait_for()
    _finished(page, 1)
    assert page.locator("#trackers tr .status").first.inner_text() == "Success"

    # The imported schedule fires by itself (due within three minutes of the import).
    deadline = dt.datetime.now() + dt.timedelta(minutes=4)
    while page.locator("#trackers tr").count() < 2:
        assert dt.datetime.now() < deadline, "the imported schedule did not fire"
        page.wait_for_timeout(5000)
        page.reload()
    _finished(page, 2)
    statuses = page.locator("#trackers tr .status").all_inner_texts()
    assert statuses == ["Success", "Success"], statuses
    assert "scheduled" in page.locator("#trackers tr").first.inner_text().lower()
    assert errors == [], errors
    context.close()

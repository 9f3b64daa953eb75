"""Pull URLs and trigger URLs in a real headless Chromium against a real ``dancecat serve``.

The job's owner makes a pull URL and a signed trigger on the job page, copies each from
the one page that shows it, and the outside world uses them with no session: the
trigger queues a run (answering 202 with its id), the pull URL serves that run's CSV;
the page then shows when each was last used. Rotating the pull URL and revoking the
trigger take one click each, and the old addresses answer 404.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_browser import WAIT_MS, chromium  # noqa: F401  (the fixture)
from test_web_helpers import LiveServer, dancecat, serve

pytestmark = pytest.mark.browser

EMAIL = "owner@example.com"
PASSWORD = "a long browser password"
QUERY = "SELECT ArtistId, Name FROM Artist ORDER BY ArtistId LIMIT 5"


@pytest.fixture
def server(tmp_path: Path, sqlite_chinook: Path) -> Iterator[LiveServer]:
    """``dancecat serve`` whose SQLite connections may open ``sqlite_chinook`` (in
    ``tmp_path``, beside the home)."""
    home = tmp_path / "home"
    home.mkdir()
    dancecat(home, "init")
    dancecat(home, "add-allowed-user", EMAIL)
    yield from serve(home)


def call(
    url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def api(server: LiveServer, token: str, path: str, body: dict) -> dict:
    status, answer = call(
        server.api(path),
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert status == 201, answer
    return json.loads(answer)


def test_pull_urls_and_triggers_on_the_job_page(chromium, server, sqlite_chinook):  # noqa: F811
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(WAIT_MS)

    # Sign up in the browser; a job of the new user's, made over the API.
    page.goto(server.url + "/jobs")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_text("First sign-in, or your password was reset?").click()
    page.get_by_label("Confirm password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in or sign up").click()
    page.wait_for_url("**/jobs")
    token = dancecat(server.home, "token", "create", EMAIL).strip()
    connection = api(
        server, token, "/connections",
        {"name": "chinook", "driver": "sqlite", "database": str(sqlite_chinook)},
    )["connection"]  # fmt: skip
    job = api(
        server, token, "/jobs",
        {"name": "Artists", "connection_id": connection["id"], "query": QUERY},
    )["job"]  # fmt: skip
    job_page = f"{server.url}/jobs/{job['id']}"
    page.goto(job_page)
    section = page.locator("#job-urls")
    assert "None yet." in section.inner_text()

    # A pull URL and a signed trigger, each shown once on the page that made it.
    page.locator("#pull-name").fill("finance sheet")
    page.locator("#create-pull-url").click()
    page.locator(".token-once").wait_for()
    pull_csv = page.locator("#new-url-1").input_value()
    assert pull_csv.startswith(server.url + "/pull/dcp_") and pull_csv.endswith(".csv")
    page.locator("#trigger-name").fill("ETL done")
    page.locator("#trigger-signed").check()
    page.locator("#create-trigger").click()
    page.locator(".token-once").wait_for()
    trigger = page.locator("#new-url-1").input_value()
    secret = page.locator("#new-secret").input_value()
    assert trigger.startswith(server.url + "/trigger/dcg_") and len(secret) > 20
    page.goto(job_page)  # shown once: gone on the next view
    assert page.locator(".token-once").count() == 0
    rows = section.locator("#url-table tbody tr")
    assert rows.count() == 2 and "never" in rows.nth(0).inner_text()

    # No successful run yet: the pull URL says so. The trigger (signed) queues one.
    assert call(pull_csv)[0] == 404
    body = b'{"parameters": {}}'
    assert call(trigger, data=body, headers={"Content-Type": "application/json"})[0] == 401
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-DanceCat-Signature": signature}
    status, answer = call(trigger, data=body, headers={**headers, "Idempotency-Key": "k1"})
    assert status == 202
    run = json.loads(answer)["run"]
    again = call(trigger, data=body, headers={**headers, "Idempotency-Key": "k1"})
    assert again[0] == 202 and json.loads(again[1])["run"] == run
    page.goto(job_page)
    page.locator(f"#tracker-{run}").wait_for()  # the triggered run, on the job page
    page.wait_for_function(
        f"() => document.querySelector('#tracker-{run}').dataset.finished === 'true'",
        timeout=WAIT_MS,
    )
    status, data = call(pull_csv)
    assert status == 200
    got = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert got[0] == ["ArtistId", "Name"] and len(got) == 6

    # The page shows each URL's last use; rotate the pull URL and revoke the trigger.
    page.goto(job_page)
    assert "never" not in rows.nth(0).inner_text() and "never" not in rows.nth(1).inner_text()
    page.get_by_role("button", name="Rotate finance sheet").click()
    page.locator(".token-once").wait_for()
    rotated = page.locator("#new-url-1").input_value()
    assert rotated != pull_csv and call(rotated)[0] == 200 and call(pull_csv)[0] == 404
    page.get_by_role("button", name="Revoke ETL done").click()
    page.wait_for_url(f"**/jobs/{job['id']}")
    assert "Trigger “ETL done” revoked" in page.inner_text("main")
    status, _ = call(trigger, data=body, headers={**headers, "Idempotency-Key": "k2"})
    assert status == 404
    assert errors == [], errors
    context.close()

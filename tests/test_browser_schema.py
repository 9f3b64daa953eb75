"""The job form's schema browser, autocomplete, Format SQL and error position in a real
headless Chromium against a real ``dancecat serve`` and a PostgreSQL database.

The tree is browsed with the keyboard only; a completion inserts a column chosen from the
catalogue; Format SQL lays the query out; a preview that fails at a column the database
names marks that place in the editor. Screenshots: ``docs/screenshots/schema-browser.png``
and ``autocomplete.png`` (the README shows them).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import _psql
from test_browser import EMAIL, PASSWORD, SHOTS, WAIT_MS, chromium, open_editor  # noqa: F401 - fixture
from test_web_helpers import LiveServer, dancecat, serve

pytestmark = pytest.mark.browser

SHOP = """
CREATE TABLE customers (id integer PRIMARY KEY, email text, password_hash text);
CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer, total numeric(10, 2));
CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 100;
INSERT INTO customers VALUES (1, 'ann@example.com', 'x');
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    home = tmp_path / "home"
    home.mkdir()
    dancecat(home, "init")
    dancecat(home, "add-allowed-user", EMAIL)
    yield from serve(home)


def _sign_up_and_connect(page, server: LiveServer, pg: dict) -> None:
    page.goto(server.url + "/jobs")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_text("First sign-in, or your password was reset?").click()
    page.get_by_label("Confirm password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in or sign up").click()
    page.wait_for_url("**/jobs")
    page.goto(server.url + "/connections/new")
    page.get_by_label("Name").fill("Shop")
    page.get_by_label("Driver").select_option("postgresql")
    page.get_by_label("Host").fill(str(pg["host"]))
    page.get_by_label("Port").fill(str(pg["port"]))
    page.get_by_label("Database").fill(pg["database"])
    page.get_by_label("User").fill(pg["user"])
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/connections")


def _shot_of_editor(page, name: str) -> None:
    """The query editor, its tools and the schema browser, as the README shows them."""
    top = page.locator(".field-code").bounding_box()
    bottom = page.locator("#schema-browser").bounding_box()
    hints = page.locator(".CodeMirror-hints")
    if hints.count():
        box = hints.bounding_box()
        bottom = box if box["y"] + box["height"] > bottom["y"] + bottom["height"] else bottom
    page.screenshot(
        path=str(SHOTS / f"{name}.png"),
        clip={
            "x": top["x"] - 12,
            "y": top["y"] - 24,
            "width": top["width"] + 24,
            "height": bottom["y"] + bottom["height"] - top["y"] + 36,
        },
    )


def _editor_text(page) -> str:
    return page.evaluate("document.querySelector('.CodeMirror').CodeMirror.getValue()")


def test_schema_browser_autocomplete_format_and_error_position(
    chromium,  # noqa: F811 - the fixture imported above
    server,
    pg_database,
):
    _psql(database=pg_database["database"], stdin=SHOP)
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(WAIT_MS)
    _sign_up_and_connect(page, server, pg_database)

    page.goto(server.url + "/jobs/new")
    page.get_by_label("Name", exact=True).fill("Big customers")
    page.get_by_label("Connection").select_option(label="Shop")
    tree = page.get_by_role("tree", name="Schema")
    tree.get_by_role("treeitem", name="customers").wait_for()
    assert "3 tables and views" in page.locator("#schema-status").inner_text()

    # Keyboard only: into the tree, down to customers, open it, down to its columns.
    page.locator("#schema-filter").focus()
    page.keyboard.press("Tab")  # the tree's one tab stop: the schema
    assert page.evaluate("document.activeElement.getAttribute('aria-level')") == "1"
    for _ in range(2):  # public > big_orders > customers
        page.keyboard.press("ArrowDown")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused.startswith("customers"), focused
    page.keyboard.press("ArrowRight")
    columns = tree.locator("[aria-level='3']")
    columns.first.wait_for()
    assert columns.count() == 3
    assert tree.get_by_role("treeitem", name="customers").get_attribute("aria-expanded") == "true"
    scrubbed = columns.nth(2)
    assert "password_hash" in scrubbed.inner_text()
    assert "removed from results" in scrubbed.inner_text()
    page.keyboard.press("ArrowRight")  # into the open table: its first column
    assert page.evaluate("document.activeElement.textContent").startswith("id")

    # Autocomplete: a "." after a table's name offers its columns; Enter inserts one.
    open_editor(page)
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.type("select customers.em")
    page.keyboard.press("Control+Space")
    hints = page.locator(".CodeMirror-hints .CodeMirror-hint")
    hints.first.wait_for()
    assert hints.all_inner_texts() == ["customers.email"]
    page.keyboard.press("Enter")
    page.keyboard.type(", o")
    page.keyboard.press("Control+Space")
    hints.first.wait_for()
    offered = hints.all_inner_texts()
    assert "orders" in offered and "OR" in offered and "ORDER" in offered, offered
    page.keyboard.press("Escape")
    page.keyboard.press("Backspace")
    page.keyboard.type("customers.")
    hints.first.wait_for()
    _shot_of_editor(page, "autocomplete")
    assert "customers.password_hash" in hints.all_inner_texts()
    page.keyboard.press("Enter")  # the first: customers.id
    page.keyboard.type(" from customers where nosuch = 1")
    assert _editor_text(page) == (
        "select customers.email, customers.id from customers where nosuch = 1"
    )

    # Format SQL: one clause a line, keywords in capitals.
    page.get_by_role("button", name="Format SQL").click()
    page.wait_for_function(
        "() => document.querySelector('.CodeMirror').CodeMirror.getValue().startsWith('SELECT')"
    )
    assert _editor_text(page) == (
        "SELECT customers.email,\n       customers.id\nFROM customers\nWHERE nosuch = 1"
    )

    _shot_of_editor(page, "schema-browser")

    # The database's error position, pointed at in the editor.
    page.get_by_role("button", name="Run preview").click()
    box = page.locator("#preview .error-box")
    box.wait_for()
    assert 'column "nosuch" does not exist' in box.inner_text()
    assert "At line 4, column 7 of the query." in box.inner_text()
    assert page.locator(".cm-error-mark").inner_text() == "nosuch"
    box.get_by_role("button", name="Show in the editor").click()
    cursor = page.evaluate("document.querySelector('.CodeMirror').CodeMirror.getCursor()")
    assert cursor == {"line": 3, "ch": 6, "sticky": None} or cursor["line"] == 3

    # Refresh reads the catalogue again.
    _psql(database=pg_database["database"], stdin="CREATE TABLE refunds (id integer);")
    page.get_by_role("button", name="Refresh").click()
    tree.get_by_role("treeitem", name="refunds").wait_for()
    assert errors == [], errors
    context.close()

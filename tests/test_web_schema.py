"""The schema routes and Format SQL through WebTest: the catalogue of a connection one may
see (others' answer as unknown ids), columns on demand, refresh, and clean 4xx answers."""

from __future__ import annotations

import sqlite3

import pytest
from test_web_helpers import make_app, make_user, sign_in


@pytest.fixture
def app(runtime):
    return make_app(runtime)


@pytest.fixture
def alice(runtime):
    return make_user(runtime, "alice@example.com")


@pytest.fixture
def bob(runtime):
    return make_user(runtime, "bob@example.com")


@pytest.fixture
def connection(app, alice, tmp_path):
    path = tmp_path / "shop.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id INTEGER, email TEXT, password_hash TEXT)")
        db.execute("CREATE VIEW emails AS SELECT email FROM customers")
    body = {"name": "shop", "driver": "sqlite", "database": str(path)}
    return app.post_json("/api/v1/connections", body, headers=alice.auth).json["connection"]


def test_schema_columns_and_refresh(app, alice, connection, tmp_path):
    url = f"/api/v1/connections/{connection['id']}/schema"
    schema = app.get(url, headers=alice.auth).json["schema"]
    assert schema["driver"] == "sqlite" and schema["left_out"] == 0
    assert [(t["name"], t["kind"], t["columns"]) for t in schema["tables"]] == [
        ("customers", "table", None),
        ("emails", "view", None),
    ]
    columns = app.get(
        f"{url}/columns", {"schema": "main", "table": "customers"}, headers=alice.auth
    ).json["columns"]
    assert [(c["name"], c["type"], bool(c["scrubbed"])) for c in columns] == [
        ("id", "INTEGER", False),
        ("email", "TEXT", False),
        ("password_hash", "TEXT", True),
    ]
    # Read columns come with the schema from now on (the editor completes them at once).
    again = app.get(url, headers=alice.auth).json["schema"]
    assert [c["name"] for c in again["tables"][0]["columns"]] == ["id", "email", "password_hash"]
    with sqlite3.connect(tmp_path / "shop.sqlite") as db:
        db.execute("CREATE TABLE orders (id INTEGER)")
    assert len(app.get(url, headers=alice.auth).json["schema"]["tables"]) == 2  # cached
    fresh = app.post(f"{url}/refresh", headers=alice.auth).json["schema"]
    assert [t["name"] for t in fresh["tables"]] == ["customers", "emails", "orders"]


def test_other_users_connections_are_unknown_ids(app, alice, bob, connection):
    url = f"/api/v1/connections/{connection['id']}/schema"
    for method, path in (("GET", url), ("POST", f"{url}/refresh")):
        answer = app.request(path, method=method, headers=bob.auth, status=404)
        assert answer.json["error"]["code"] == "not_found"
    app.get(f"{url}/columns?schema=main&table=customers", headers=bob.auth, status=404)
    # Shared, it is visible: the catalogue is the connection's, the same for everyone.
    app.patch_json(f"/api/v1/connections/{connection['id']}", {"shared": True}, headers=alice.auth)
    assert app.get(url, headers=bob.auth).json["schema"]["tables"]


def test_bad_requests_are_4xx(app, alice, connection, tmp_path):
    url = f"/api/v1/connections/{connection['id']}/schema"
    missing = app.get(f"{url}/columns?schema=main", headers=alice.auth, status=422).json
    assert missing["error"]["field"] == "table"
    unknown = app.get(f"{url}/columns?schema=main&table=nope", headers=alice.auth, status=404)
    assert "not in the connection's catalogue" in unknown.json["error"]["message"]
    app.get("/api/v1/connections/999999/schema", headers=alice.auth, status=404)
    (tmp_path / "shop.sqlite").unlink()
    gone = app.post(f"{url}/refresh", headers=alice.auth, status=422).json["error"]
    assert gone["message"].startswith("the catalogue could not be read")


def test_format_sql_keeps_parameters(app, alice, connection):
    query = "select id, email from customers where day = {{ day }} and x = '{{ no }}'"
    formatted = app.post_json(
        "/api/v1/format-sql",
        {"query": query, "connection_id": connection["id"]},
        headers=alice.auth,
    ).json["query"]
    assert formatted == (
        "SELECT id,\n       email\nFROM customers\nWHERE DAY = {{ day }}\n  AND x = '{{ no }}'"
    )
    refused = app.post_json(
        "/api/v1/format-sql", {"query": "select {{ oops"}, headers=alice.auth, status=422
    ).json["error"]
    assert refused["field"] == "query"
    app.post_json("/api/v1/format-sql", {"query": 5}, headers=alice.auth, status=422)


def _job_form(csrf: str, connection_id: int, query: str, action: str) -> list[tuple[str, str]]:
    return [
        ("csrf_token", csrf),
        ("name", "q"),
        ("connection_id", str(connection_id)),
        ("query", query),
        ("action", action),
    ]


def test_the_form_formats_and_places_errors_without_script(app, connection):
    csrf = sign_in(app, "alice@example.com")
    page = app.post(
        "/jobs/new",
        _job_form(
            csrf, connection["id"], "select id from customers where x = {{ day }}", "format-sql"
        ),
    )
    assert page.html.select_one("#query").text == ("SELECT id\nFROM customers\nWHERE x = {{ day }}")
    refused = app.post("/jobs/new", _job_form(csrf, connection["id"], "select {{ x", "format-sql"))
    assert "is not a parameter" in refused.html.select_one("#query-error").text
    # A failed preview says where SQLite's error is, for the editor (and the reader).
    failed = app.post(
        "/jobs/preview", _job_form(csrf, connection["id"], "\r\nSELECT 1\r\nFROMM customers", "")
    )
    box = failed.html.select_one("#preview .error-box")
    assert (box["data-error-line"], box["data-error-column"]) == (
        "3",
        "7",
    )  # near "customers": FROMM reads as an alias
    assert "At line 3, column 7 of the query." in box.text

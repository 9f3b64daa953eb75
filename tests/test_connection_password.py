"""A saved connection's password goes only where it was saved for.

Whoever may edit a connection (its owner, any admin) must not be able to read its stored
password by pointing it at a server they control and pressing Test with the password field
left empty. The listener below speaks just enough of the PostgreSQL protocol to ask for the
password in clear text (``AuthenticationCleartextPassword``) and records what it gets, so
a password sent anywhere it should not go is caught, not guessed at.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

import pytest
from test_web_helpers import make_app, make_user, sign_in

from dancecat_core.models import Connection

STORED = "Stored-Secret-7f3a9"
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


class PasswordCatcher:
    """A fake PostgreSQL server on a free local port that records each password it is sent."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.passwords: list[str] = []
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            with client:
                client.settimeout(10)
                with contextlib.suppress(OSError, struct.error):
                    self._speak(client)

    @staticmethod
    def _read(client: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = client.recv(size - len(data))
            if not chunk:
                raise OSError("closed")
            data += chunk
        return data

    def _speak(self, client: socket.socket) -> None:
        while True:  # startup, after refusing SSL and GSS encryption requests
            length, code = struct.unpack("!ii", self._read(client, 8))
            self._read(client, length - 8)
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                client.sendall(b"N")
                continue
            break
        client.sendall(b"R" + struct.pack("!ii", 8, 3))  # send me your password, in clear
        kind = self._read(client, 1)
        (length,) = struct.unpack("!i", self._read(client, 4))
        body = self._read(client, length - 4)
        if kind == b"p":
            self.passwords.append(body.rstrip(b"\0").decode("utf-8"))
        error = b"SFATAL\0C28P01\0Mpassword authentication failed\0\0"
        client.sendall(b"E" + struct.pack("!i", len(error) + 4) + error)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def catchers():
    made = [PasswordCatcher(), PasswordCatcher()]
    yield made
    for catcher in made:
        catcher.close()


@pytest.fixture
def saved(runtime, catchers):
    """Alice's PostgreSQL connection with a stored password, saved for catcher A; an admin
    (Root) who may edit it and wants to read that password with catcher B."""
    app = make_app(runtime)
    alice = make_user(runtime, "alice@example.com")
    root = make_user(runtime, "root@example.com", admin=True)
    body = {
        "name": "warehouse",
        "driver": "postgresql",
        "host": "127.0.0.1",
        "port": catchers[0].port,
        "database": "sales",
        "user": "reporter",
        "password": STORED,
    }
    connection = app.post_json("/api/v1/connections", body, headers=alice.auth).json
    return app, root, connection["connection"], body


def test_the_catcher_catches_a_sent_password(saved, catchers):
    """The honest baseline: testing the saved connection sends the stored password to the
    server it was saved for, and the catcher records it."""
    app, root, connection, _ = saved
    answer = app.post(f"/api/v1/connections/{connection['id']}/test", headers=root.auth).json
    assert answer["ok"] is False and "password authentication failed" in answer["error"]
    assert catchers[0].passwords == [STORED]


@pytest.mark.parametrize(
    "change",
    [
        {"port": "B"},
        {"host": "localhost"},
        {"host": "127.0.0.2"},
        {"user": "postgres"},
        {"database": "other"},
        {"driver": "mysql"},
        {"options": {"sslmode": "disable"}},
        {"port": "B", "password": ""},
        {"port": "B", "password": None},
    ],
)
def test_changing_the_target_needs_the_password_again(saved, catchers, runtime, change):
    app, root, connection, body = saved
    change = {k: catchers[1].port if v == "B" else v for k, v in change.items()}
    url = f"/api/v1/connections/{connection['id']}"
    for method, payload in (
        (app.patch_json, change),
        (app.put_json, {**{k: v for k, v in body.items() if k != "password"}, **change}),
    ):
        refused = method(url, payload, headers=root.auth, status=422).json["error"]
        assert refused["field"] == "password" and "type the password again" in refused["message"]
    # Nothing changed, and the saved connection's test still goes where it was saved for.
    assert app.get(url, headers=root.auth).json["connection"]["port"] == catchers[0].port
    app.post(f"{url}/test", headers=root.auth)
    assert catchers[1].passwords == [] and catchers[0].passwords == [STORED]


def test_the_edit_forms_test_and_save_never_send_the_stored_password(saved, catchers, runtime):
    _app, root, connection, body = saved
    admin = make_app(runtime)
    csrf = sign_in(admin, root.email)
    form = {
        "csrf_token": csrf,
        "name": body["name"],
        "driver": "postgresql",
        "host": "127.0.0.1",
        "port": str(catchers[1].port),
        "database": body["database"],
        "user": body["user"],
        "password": "",
        "read_only": "on",
    }
    edit = f"/connections/{connection['id']}/edit"
    tested = admin.post(edit, {**form, "action": "test"}, status=422)
    assert "type the password again" in tested.text
    script = admin.post("/connections/test", {**form, "connection_id": str(connection["id"])})
    assert script.json["ok"] is False and script.json["field"] == "password"
    saved_form = admin.post(edit, {**form, "action": "save"}, status=422)
    assert "type the password again" in saved_form.text
    assert catchers[1].connections == 0 and catchers[1].passwords == []
    # Unchanged target: the stored password is used, and only there.
    same = {**form, "port": str(catchers[0].port), "connection_id": str(connection["id"])}
    admin.post("/connections/test", same)
    assert catchers[0].passwords == [STORED] and catchers[1].passwords == []


def test_a_new_password_with_the_new_target_is_fine(saved, catchers, runtime):
    app, root, connection, _ = saved
    url = f"/api/v1/connections/{connection['id']}"
    app.patch_json(url, {"name": "renamed", "shared": True}, headers=root.auth)  # not the target
    app.patch_json(url, {"port": catchers[1].port, "password": "typed-again"}, headers=root.auth)
    app.post(f"{url}/test", headers=root.auth)
    assert catchers[1].passwords == ["typed-again"] and catchers[0].passwords == []
    with runtime.session_factory() as session:
        stored = session.get(Connection, connection["id"])
        assert runtime.secret_box.decrypt(stored.password_encrypted) == "typed-again"


def test_a_connection_without_a_stored_password_may_change_freely(runtime, sqlite_chinook):
    """Nothing to leak: a SQLite connection (no password) moves to another file as before."""
    app = make_app(runtime)
    alice = make_user(runtime, "alice@example.com")
    body = {"name": "local", "driver": "sqlite", "database": str(sqlite_chinook)}
    created = app.post_json("/api/v1/connections", body, headers=alice.auth).json["connection"]
    other = sqlite_chinook.with_name("copy.sqlite")
    other.write_bytes(sqlite_chinook.read_bytes())
    url = f"/api/v1/connections/{created['id']}"
    changed = app.patch_json(url, {"database": str(other)}, headers=alice.auth, status=200)
    assert changed.json["connection"]["database"] == str(other)

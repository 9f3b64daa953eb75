"""SQLite connections never reach DanceCat's own files, whatever the spelling.

The attacker is a signed-in member who saves a SQLite connection whose name SQLite would
resolve to the app database, the queue file, a result or a key: through the API, the
connection form and the console, at save time, and at run time for a name that was fine
when saved and points elsewhere later. SQLITE_ALLOWED_DIRS is the test's whole folder here,
so DanceCat's own home lies inside an allowed folder and only the protection refuses it.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_web_helpers import make_app, make_user, sign_in

from dancecat_core import migrations
from dancecat_core.db import session_scope
from dancecat_core.errors import ConnectionFailed, ValidationError
from dancecat_core.local_files import OWN_FILES
from dancecat_core.models import Connection, Job, TrackerStatus
from dancecat_core.runner import execute_tracker
from dancecat_core.runtime import build_runtime
from dancecat_core.services import connections, jobs
from dancecat_core.services.connections import ConnectionInput
from dancecat_core.settings import load_settings
from dancecat_plugins.sqlite_driver import SqliteDriver, sqlite_file

NOBODY = 65534
CONSOLE = (sys.executable, "-m", "dancecat_core.console")
CHINOOK = Path(__file__).resolve().parent.parent / "examples" / "chinook.sqlite"


@pytest.fixture
def place(tmp_path: Path):
    """Home, queue folder and result folder apart, all inside the allowed folder."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    shutil.copyfile(CHINOOK, allowed / "chinook.sqlite")
    env = {
        "DANCECAT_HOME": str(tmp_path / "home"),
        "DANCECAT_HUEY_FILE": str(tmp_path / "queue" / "huey.sqlite"),
        "DANCECAT_RESULT_DIR": str(tmp_path / "results"),
        "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
    }
    runtime = build_runtime(load_settings(environ=env))
    migrations.upgrade(runtime.engine)
    (tmp_path / "queue").mkdir()
    with sqlite3.connect(tmp_path / "queue" / "huey.sqlite") as queue:
        queue.execute("CREATE TABLE task (id INTEGER PRIMARY KEY, data BLOB)")
    (tmp_path / "results").mkdir()
    with sqlite3.connect(tmp_path / "results" / "r.sqlite") as result:
        result.execute("CREATE TABLE r (x)")
    yield tmp_path, runtime, env
    runtime.engine.dispose()


def attacks(root: Path) -> list[str]:
    """Names of DanceCat's own files, spelled every way SQLite accepts (and some it does not)."""
    a, home = root / "allowed", root / "home"
    app_db = home / "dancecat.sqlite"
    return [
        str(app_db),
        f"{a}/x?/../../home/dancecat.sqlite",  # the reported bypass
        f"{a}/x#/../../home/dancecat.sqlite",
        f"{a}/%2e%2e/home/dancecat.sqlite",
        f"file:{a}/x%3F/../../home/dancecat.sqlite",
        f"file:{a}/%2e%2e/home/dancecat.sqlite",
        f"file:{a}/%2E%2E/home/dancecat.sqlite?mode=ro",
        f"file://{a}/../home/dancecat.sqlite",
        f"file://localhost{a}/../home/dancecat.sqlite",
        f"file:{app_db}#{a}/chinook.sqlite",
        f"file:{app_db}?mode=ro",
        f"file:{a}/chinook.sqlite%00/../../home/dancecat.sqlite",
        f"{app_db}/",
        f"{a}//..//home//dancecat.sqlite",
        f"{home}/./dancecat.sqlite",
        f"{root}/queue/huey.sqlite",
        f"file:{root}/queue/%68uey.sqlite",
        f"{root}/results/r.sqlite",
        f"{home}/secret_key",
        "home/dancecat.sqlite",
        "../home/dancecat.sqlite",
        "~/dancecat.sqlite",
        "file:home/dancecat.sqlite",
        "FILE:" + str(app_db),
        ":memory:",
        "file::memory:",
        f"file://evil.example{a}/chinook.sqlite",
    ]


def uri_option_attacks(root: Path) -> list[str]:
    chinook = root / "allowed" / "chinook.sqlite"
    return [
        f"file:{chinook}?vfs=unix-none",
        f"file:{chinook}?immutable=1",
        f"file:{chinook}?nolock=1",
        f"file:{chinook}?mode=rw",
        f"file:{chinook}?mode=rwc",
        f"file:{chinook}?mode=memory",
        f"file:{chinook}?mode=ro&mode=rwc",
        f"file:{chinook}?cache=shared",
        f"file:{chinook}?=x&vfs=unix-none",
        f"file:{chinook}?%76fs=unix-none",
    ]


def save(runtime, actor, database: str, *, read_only: bool = True) -> Connection:
    with session_scope(runtime.session_factory) as session:
        return connections.create(
            runtime,
            session,
            actor,
            ConnectionInput(
                name=f"c{uuid.uuid4().hex[:8]}",
                driver="sqlite",
                database=database,
                read_only=read_only,
            ),
        )


def test_every_spelling_of_own_files_is_refused_when_saved(place):
    root, runtime, _ = place
    for database in attacks(root) + uri_option_attacks(root):
        with pytest.raises(ValidationError) as refused:
            save(runtime, None, database)
        assert refused.value.field == "database", database
        assert "\n" not in str(refused.value)
    with session_scope(runtime.session_factory) as session:
        assert session.query(Connection).count() == 0


def test_own_files_are_refused_as_own_files_not_by_luck(place):
    """The names that resolve into DanceCat's places get the own-files answer, so the
    resolution (not the allowed list) is what stops them."""
    root, runtime, _ = place
    files = runtime.file_rules()
    a = root / "allowed"
    for database in [
        f"file:{a}/x%3F/../../home/dancecat.sqlite",
        f"file:{a}/%2e%2e/home/dancecat.sqlite",
        f"file://localhost{a}/../home/dancecat.sqlite",
        f"{a}//..//home//dancecat.sqlite",
        f"{root}/home/dancecat.sqlite/",
        f"{root}/queue/huey.sqlite",
        f"{root}/results/r.sqlite",
    ]:
        with pytest.raises(ValidationError, match="DanceCat's own files"):
            sqlite_file(database, read_only=True, files=files)


def test_the_bundled_examples_are_the_default_and_the_rest_is_outside(tmp_path):
    settings = load_settings(environ={"DANCECAT_HOME": str(tmp_path / "home")})
    runtime = build_runtime(settings)
    migrations.upgrade(runtime.engine)
    save(runtime, None, str(CHINOOK))
    copy = tmp_path / "chinook.sqlite"
    shutil.copyfile(CHINOOK, copy)
    with pytest.raises(ValidationError) as refused:
        save(runtime, None, str(copy))
    assert str(refused.value) == (
        f"Database {copy} is outside SQLITE_ALLOWED_DIRS (allowed: {CHINOOK.parent})"
    )
    nothing = build_runtime(
        load_settings(
            environ={"DANCECAT_HOME": str(tmp_path / "h2"), "DANCECAT_SQLITE_ALLOWED_DIRS": ""}
        )
    )
    with pytest.raises(ValidationError, match=r"allowed: none"):
        sqlite_file(str(CHINOOK), read_only=True, files=nothing.file_rules())
    runtime.engine.dispose()


def test_links_are_followed_the_way_sqlite_follows_them(place):
    root, runtime, _ = place
    a, home = root / "allowed", root / "home"
    (a / "dir-link").symlink_to(home)
    (a / "file-link.sqlite").symlink_to(home / "dancecat.sqlite")
    (a / "relative-link.sqlite").symlink_to(Path("..") / "home" / "dancecat.sqlite")
    os.link(home / "dancecat.sqlite", a / "hard-link.sqlite")
    os.link(root / "queue" / "huey.sqlite", a / "queue-hard-link.sqlite")
    os.link(root / "results" / "r.sqlite", a / "result-hard-link.sqlite")
    os.link(home / "encryption_keys", a / "keys")
    with open(home / "dancecat.sqlite", "rb") as held:
        for database in [
            f"{a}/dir-link/dancecat.sqlite",
            f"{a}/file-link.sqlite",
            f"{a}/relative-link.sqlite",
            f"{a}/hard-link.sqlite",
            f"{a}/queue-hard-link.sqlite",
            f"{a}/result-hard-link.sqlite",
            f"{a}/keys",
            f"/proc/self/fd/{held.fileno()}",
            f"/dev/fd/{held.fileno()}",
            f"/proc/{os.getpid()}/fd/{held.fileno()}",
            f"file:/proc/self/fd/{held.fileno()}",
        ]:
            with pytest.raises(ValidationError, match="DanceCat's own files"):
                save(runtime, None, database)


def test_a_plain_name_and_a_file_uri_to_an_allowed_file_are_saved_and_run(place):
    root, runtime, _ = place
    chinook = root / "allowed" / "chinook.sqlite"
    odd = root / "allowed" / "a?b#c%d.sqlite"  # a legal name, reachable only as a URI
    shutil.copyfile(CHINOOK, odd)
    for database in [
        str(chinook),
        f"file:{chinook}",
        f"file://{chinook}?mode=ro",
        f"file://localhost{chinook}#anything",
        f"file:{root}/allowed/a%3Fb%23c%25d.sqlite",
        f"{root}/allowed/../allowed/chinook.sqlite",
    ]:
        connection = save(runtime, None, database)
        with SqliteDriver().connect(runtime.connection_params(connection), timeout=5) as session:
            cursor = session.open_query("SELECT count(*) FROM Artist", timeout=5)
            assert list(cursor.batches()) == [[(275,)]], database


def test_the_api_and_the_form_refuse_and_save_nothing(place):
    root, runtime, _ = place
    app = make_app(runtime)
    alice = make_user(runtime, "alice@example.com")
    for database in attacks(root)[:12]:
        body = {"name": "x", "driver": "sqlite", "database": database}
        answer = app.post_json("/api/v1/connections", body, headers=alice.auth, status=422)
        assert answer.json["error"]["field"] == "database"
        answer = app.post_json("/api/v1/connections/test", body, headers=alice.auth, status=422)
    csrf = sign_in(app, alice.email)
    form = {"csrf_token": csrf, "name": "x", "driver": "sqlite", "read_only": "on"}
    page = app.post(
        "/connections/new",
        {**form, "database": f"file:{root}/allowed/%2e%2e/home/dancecat.sqlite"},
        status=422,
    )
    assert "DanceCat&#39;s own files" in page.text
    with session_scope(runtime.session_factory) as session:
        assert session.query(Connection).count() == 0


def test_the_console_refuses_with_one_line(place):
    root, _, env = place

    def add(database: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "dancecat_core.console",
                "connection",
                "add",
                "own",
                "--driver",
                "sqlite",
                "--database",
                database,
            ],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )

    done = add(f"file:{root}/allowed/x%3F/../../home/dancecat.sqlite")
    # The console names the field by its label, as the forms do.
    assert (done.returncode, done.stderr) == (2, f"error: D{OWN_FILES[1:]}\n")
    done = add(f"{root}/allowed/x?/../../home/dancecat.sqlite")
    assert done.returncode == 2
    assert done.stderr.startswith("error: Database: a plain path may not contain ?, # or %")
    assert done.stderr.count("\n") == 1


def run(runtime, connection_id: int) -> tuple[TrackerStatus, str | None]:
    with session_scope(runtime.session_factory) as session:
        job = Job(name="j", connection_id=connection_id, query="SELECT * FROM sqlite_master")
        session.add(job)
        session.flush()
        tracker_id = jobs.queue_run(session, None, job.id).id
    outcome = execute_tracker(runtime, tracker_id)
    return outcome.status, outcome.error


def test_a_name_that_changes_after_saving_is_refused_at_run_time(place):
    root, runtime, _ = place
    a, home = root / "allowed", root / "home"
    (a / "sub").mkdir()
    shutil.copyfile(CHINOOK, a / "sub" / "dancecat.sqlite")
    shutil.copyfile(CHINOOK, a / "db.sqlite")
    by_dir = save(runtime, None, f"{a}/sub/dancecat.sqlite").id
    by_file = save(runtime, None, f"{a}/db.sqlite").id
    assert run(runtime, by_dir)[0] == TrackerStatus.SUCCESS
    shutil.rmtree(a / "sub")
    (a / "sub").symlink_to(home)
    (a / "db.sqlite").unlink()
    os.link(home / "dancecat.sqlite", a / "db.sqlite")
    for connection_id in (by_dir, by_file):
        status, error = run(runtime, connection_id)
        assert status == TrackerStatus.FAILED
        assert OWN_FILES in error


def test_rows_stored_before_the_check_are_refused_when_run(place):
    """A connection saved by an older version (or written straight into the database)."""
    root, runtime, _ = place
    for database in attacks(root)[:12] + uri_option_attacks(root):
        with session_scope(runtime.session_factory) as session:
            connection = Connection(name="old", driver="sqlite", database=database)
            session.add(connection)
            session.flush()
            connection_id = connection.id
        status, error = run(runtime, connection_id)
        assert status == TrackerStatus.FAILED, database
        assert "users" not in error


def test_a_driver_without_file_rules_opens_nothing(place):
    from dancecat_core.drivers import ConnectionParams

    root, _, _ = place
    params = ConnectionParams(driver="sqlite", database=str(root / "allowed" / "chinook.sqlite"))
    with pytest.raises(ConnectionFailed, match="SQLITE_ALLOWED_DIRS"):
        SqliteDriver().connect(params, timeout=5)


def test_attach_and_vacuum_into_are_refused_on_read_write_connections_too(place):
    root, runtime, _ = place
    connection = save(runtime, None, str(root / "allowed" / "chinook.sqlite"), read_only=False)
    with SqliteDriver().connect(runtime.connection_params(connection), timeout=5) as session:
        for sql in [
            f"ATTACH '{root}/home/dancecat.sqlite' AS app",
            f"VACUUM INTO '{root}/allowed/copy.sqlite'",
        ]:
            with pytest.raises(Exception, match="ATTACH and VACUUM INTO are not allowed"):
                session.open_query(sql, timeout=5)
    assert not (root / "allowed" / "copy.sqlite").exists()


def test_read_write_sqlite_connections_are_for_admins(place):
    root, runtime, _ = place
    app = make_app(runtime)
    alice = make_user(runtime, "alice@example.com")
    admin = make_user(runtime, "root@example.com", admin=True)
    chinook = str(root / "allowed" / "chinook.sqlite")
    body = {"name": "rw", "driver": "sqlite", "database": chinook, "read_only": False}
    refused = app.post_json("/api/v1/connections", body, headers=alice.auth, status=422)
    assert refused.json["error"]["field"] == "read_only"
    assert "only an admin" in refused.json["error"]["message"]
    app.post_json("/api/v1/connections/test", body, headers=alice.auth, status=422)
    mine = app.post_json(
        "/api/v1/connections", {**body, "read_only": True}, headers=alice.auth
    ).json["connection"]
    app.patch_json(
        f"/api/v1/connections/{mine['id']}", {"read_only": False}, headers=alice.auth, status=422
    )
    csrf = sign_in(app, alice.email)
    page = app.post(
        "/connections/new",
        # An unticked Read-only box: the form's hidden input sends "off" alone.
        {"csrf_token": csrf, "name": "rw", "driver": "sqlite", "database": chinook,
         "read_only": "off"},
        status=422,
    )
    assert "only an admin" in page.text
    made = app.post_json("/api/v1/connections", body, headers=admin.auth, status=201)
    assert made.json["connection"]["read_only"] is False
    with session_scope(runtime.session_factory) as session:
        assert [c.read_only for c in session.query(Connection).order_by(Connection.id)] == [
            True,
            False,
        ]


def swap_as_nobody(good: Path, spare: Path, target: Path) -> int:
    """Fork a process that, as user nobody, keeps swapping ``good`` for a link to
    ``target`` and back until it is killed; returns its pid."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            while True:
                os.rename(good, spare)
                os.symlink(target, good)
                os.unlink(good)
                os.rename(spare, good)
        finally:
            os._exit(1)
    return pid


@pytest.fixture
def open_tree() -> Iterator[Path]:
    """A 0755 folder under /tmp, so another user can reach folders inside it."""
    base = Path(tempfile.mkdtemp(prefix="dancecat-swap-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base)


def test_a_folder_another_user_can_change_is_refused_so_no_swap_can_race(open_tree):
    """Another user keeps replacing a folder on the path with a link to DANCECAT_HOME and
    back (a race against SQLite walking the path again). Such a folder is refused when the
    connection is saved and on every connect while the swapping runs: never opened."""
    if os.geteuid() != 0:
        pytest.skip("acting as another user needs root")
    home, shared = open_tree / "home", open_tree / "shared"
    env = {"DANCECAT_HOME": str(home), "DANCECAT_SQLITE_ALLOWED_DIRS": str(open_tree)}
    runtime = build_runtime(load_settings(environ=env))
    migrations.upgrade(runtime.engine)
    (shared / "swap").mkdir(parents=True)
    with sqlite3.connect(shared / "swap" / "dancecat.sqlite") as legit:
        legit.execute("CREATE TABLE legit (x)")
    os.chown(shared, NOBODY, NOBODY)
    os.chown(shared / "swap", NOBODY, NOBODY)
    database = f"{shared}/swap/dancecat.sqlite"
    with pytest.raises(ValidationError, match=f"other users can change the folder {shared}"):
        save(runtime, None, database)
    with session_scope(runtime.session_factory) as session:
        stored = Connection(name="old", driver="sqlite", database=database)
        session.add(stored)
        session.flush()
    params = runtime.connection_params(stored)
    swapper = swap_as_nobody(shared / "swap", shared / "spare", home)
    try:
        reasons = []
        for _ in range(500):
            with pytest.raises(ConnectionFailed) as refused:
                SqliteDriver().connect(params, timeout=5)
            reasons.append(str(refused.value))
        assert any("other users can change" in reason for reason in reasons)
        assert os.waitpid(swapper, os.WNOHANG) == (0, 0)  # still swapping throughout
    finally:
        os.kill(swapper, signal.SIGKILL)
        os.waitpid(swapper, 0)
    runtime.engine.dispose()


def test_group_writable_folders_are_refused_and_sticky_ones_allowed(place):
    root, runtime, _ = place
    for folder, folder_mode, allowed in (("group", 0o775, False), ("sticky", 0o1777, True)):
        (root / "allowed" / folder).mkdir()
        shutil.copyfile(CHINOOK, root / "allowed" / folder / "c.sqlite")
        (root / "allowed" / folder).chmod(folder_mode)
        database = f"{root}/allowed/{folder}/c.sqlite"
        if allowed:
            save(runtime, None, database)
        else:
            with pytest.raises(ValidationError, match="other users can change"):
                save(runtime, None, database)


def test_a_file_not_there_yet_may_be_saved_but_never_inside_own_folders(place):
    root, runtime, _ = place
    later = save(runtime, None, f"{root}/allowed/later.sqlite").id
    for database in [f"{root}/home/later.sqlite", f"{root}/results/later.sqlite"]:
        with pytest.raises(ValidationError, match="DanceCat's own files"):
            save(runtime, None, database)
    status, error = run(runtime, later)
    assert status == TrackerStatus.FAILED and "no such file" in error


@pytest.mark.parametrize(
    "folder",
    ["/", "//", "/srv", "/srv/data", "/srv/data/", "/srv/dat", "/srv/data/x.db", "/other"],
)
@pytest.mark.parametrize(
    "path", ["/", "//srv/data", "/srv", "/srv/data", "/srv/data/x.db", "/srv/database/x.db"]
)
def test_inside_answers_as_pathlib_does(path, folder):
    from dancecat_core.local_files import _inside

    p, f = Path(path), Path(folder)
    assert _inside(p, f) == (p == f or f in p.parents)

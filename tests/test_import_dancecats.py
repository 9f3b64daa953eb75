"""``dancecat import-dancecats`` through the installed console, on an original DanceCats
database built from the original's own models (``dancecats_original``) on SQLite,
MariaDB and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dancecats_original as original
import pytest
import sqlalchemy as sa

from dancecat_core.models import Connection, Job
from dancecat_core.runtime import Runtime, build_runtime
from dancecat_core.services import accounts
from dancecat_core.settings import load_settings

DANCECAT = Path(sys.executable).with_name("dancecat")
TZ = "America/New_York"


class Console:
    def __init__(self, home: Path):
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DANCECAT_")}
        self.env["DANCECAT_HOME"] = str(home)

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(DANCECAT), *args], env=self.env, capture_output=True, text=True, timeout=300
        )

    def ok(self, *args: str) -> str:
        done = self(*args)
        assert done.returncode == 0 and done.stderr == "", (args, done.stdout, done.stderr)
        no_secret(done)
        return done.stdout

    def refused(self, *args: str, says: str) -> str:
        done = self(*args)
        no_secret(done)
        lines = done.stderr.splitlines()
        assert done.returncode == 2 and len(lines) == 1, (done.stdout, done.stderr)
        assert lines[0].startswith("error: ") and says in lines[0], lines[0]
        return lines[0]

    def json(self, *args: str) -> list[dict]:
        return json.loads(self.ok(*args, "--json"))

    def runtime(self) -> Runtime:
        return build_runtime(load_settings(environ={"DANCECAT_HOME": str(self.home)}))


def no_secret(done: subprocess.CompletedProcess) -> None:
    for secret in (*original.SECRETS, "Mail-Secret-555", "dance cats is dancing"):
        assert secret not in done.stdout and secret not in done.stderr, secret


@pytest.fixture
def console(tmp_path: Path) -> Console:
    cli = Console(tmp_path / "home")
    cli.ok("init")
    return cli


@pytest.fixture(params=["sqlite", "mysql", "postgresql"])
def source(request, tmp_path: Path) -> Iterator[dict]:
    """A throwaway original installation's database (its URL), on each kind."""
    pg = request.getfixturevalue("pg_database")  # what the imported Warehouse connection queries
    if request.param == "sqlite":
        url = built = f"sqlite:///{tmp_path / 'dancecats.db'}"
    elif request.param == "mysql":
        built = request.getfixturevalue("mysql_database")["url"]
        url = built.replace("+pymysql", "")  # as the original's config wrote it (MySQLdb)
    else:
        url = built = pg["url"]
    times = original.build(built, pg=pg)
    config = tmp_path / "config.cfg"
    original.config_file(config, url)
    yield {"url": url, "config": str(config), "kind": request.param, **times}


def listing(console: Console) -> dict[str, list[dict]]:
    return {
        what: console.json(*args)
        for what, args in (
            ("users", ("user", "list")),
            ("connections", ("connection", "list")),
            ("jobs", ("job", "list")),
            ("schedules", ("schedule", "list")),
        )
    }


def test_import_on_each_database(console: Console, source: dict) -> None:
    out = console.ok(
        "import-dancecats",
        "--from",
        source["url"],
        "--config",
        source["config"],
        "--timezone",
        TZ,
    )
    assert "user alice@example.com: added, password kept" in out
    assert "user carol@example.com: added, password kept" in out and "(disabled" in out
    assert "connection 'Accounting' of alice@example.com: skipped: no SQL Server driver" in out
    assert "job 'Ledger' of alice@example.com: skipped: its connection is not imported" in out
    assert "job 'Old report' of alice@example.com: skipped: deleted in the original" in out
    assert "job 'Daily numbers' of alice@example.com: added, 37 runs counted" in out
    assert "skipped: its one run is past" in out  # Orders' once schedule
    assert "not imported: the original's 3 run record(s) (trackers)" in out and "Redis" in out
    assert "query_test_limit = 250" in out and "smtp_security = starttls" in out
    assert "mail_sender = DanceCats <reports@example.com>" in out

    state = listing(console)
    users = {u["email"]: u for u in state["users"]}
    assert set(users) == {"alice@example.com", "bob@example.com", "carol@example.com"}
    assert users["alice@example.com"]["status"] == "active"
    assert users["bob@example.com"]["status"] == "no password"  # allowed, never registered
    assert users["carol@example.com"]["status"] == "disabled"
    assert sorted(c["name"] for c in state["connections"]) == ["Legacy", "Shop", "Warehouse"]
    jobs = {j["name"]: j for j in state["jobs"]}
    assert set(jobs) == {"Daily numbers", "Orders"}
    kinds = sorted((s["type"], s["status"]) for s in state["schedules"])
    assert kinds == [("daily", "active"), ("once", "inactive")]

    rt = console.runtime()
    try:
        with rt.session_factory() as session:
            by_name = {c.name: c for c in session.scalars(sa.select(Connection))}
            clear = {n: rt.secret_box.decrypt(c.password_encrypted) for n, c in by_name.items()}
            assert clear == {
                "Warehouse": original.PG_PASSWORD,
                "Shop": original.MY_PASSWORD,
                "Legacy": original.RC4_PASSWORD,  # the original's version-1 (RC4) row
            }
            assert by_name["Shop"].port == 3306 and by_name["Legacy"].port == 3307
            daily = session.scalars(sa.select(Job).where(Job.name == "Daily numbers")).one()
            assert daily.query == "SELECT 41 + 1 AS answer"
            assert daily.annotation == "what the boss reads at nine"
            assert daily.timeout_seconds == 90 and daily.run_count == 37
            assert [r.destination for r in daily.recipients] == ["boss@example.com"]
            assert daily.shared and daily.owner.email == "alice@example.com"
            # A daily schedule starts at the minute the original kept, in --timezone.
            schedule = {s["type"]: s for s in state["schedules"]}
            assert schedule["daily"]["start"].endswith(" 09:30")
            assert schedule["daily"]["timezone"] == TZ
            assert schedule["once"]["start"] == f"{source['later']:%Y-%m-%d %H:%M}"
            # The original's password signs in; it is then kept as argon2.
            user = accounts.sign_in(
                session, rt.settings, "alice@example.com", original.ALICE_PASSWORD
            )
            assert user.password_hash.startswith("$argon2")
            session.commit()
        with rt.session_factory() as session:
            alice = accounts.find_user(session, "alice@example.com")
            assert alice is not None and alice.password_hash.startswith("$argon2")
    finally:
        rt.engine.dispose()

    # The imported job runs on its imported connection (PostgreSQL, trust: any password).
    ran = console.ok("job", "run", "Daily numbers", "--no-notify")
    assert ran.rstrip().endswith(": Success, 1 rows"), ran

    # Idempotent: a second run adds nothing and changes nothing.
    before = listing(console)
    again = console.ok(
        "import-dancecats",
        "--from",
        source["url"],
        "--config",
        source["config"],
        "--timezone",
        TZ,
    )
    assert "0 were added" in again and ": added" not in again
    assert "connection 'Warehouse' of alice@example.com: already present" in again
    assert "job 'Daily numbers' of alice@example.com: already present" in again
    after = listing(console)
    assert after == before


def test_dry_run_writes_nothing(console: Console, tmp_path: Path, pg_database: dict) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    original.build(url, pg=pg_database)
    with sa.create_engine(url).begin() as db:  # a hash not in the original's format
        db.execute(original.user.update().where(original.user.c.id == 2).values(password="x$y"))
    config = tmp_path / "config.cfg"
    original.config_file(config, url)
    out = console.ok("import-dancecats", "--config", str(config), "--dry-run")
    assert "job 'Daily numbers' of alice@example.com: added" in out
    assert (
        "user carol@example.com: added; its stored hash is not in the original's format: "
        "sets a new password at the first sign-in" in out
    )
    assert "would be added" in out and "dry run: nothing was written" in out
    assert console.json("user", "list") == [] and console.json("job", "list") == []
    assert console.json("connection", "list") == []


def test_wrong_key_imports_nothing(console: Console, tmp_path: Path, pg_database: dict) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    original.build(url, pg=pg_database)
    config = tmp_path / "config.cfg"
    original.config_file(config, url, key="not the key it was")
    line = console.refused(
        "import-dancecats",
        "--config",
        str(config),
        says="does not decrypt under this DB_ENCRYPT_KEY",
    )
    assert "'Warehouse' (id 1)" in line
    # No config at all: the passwords cannot be read, and it says how to give the key.
    console.refused("import-dancecats", "--from", url, says="give the original's config file")
    assert console.json("user", "list") == [] and console.json("connection", "list") == []


def test_bad_input_gets_one_line(console: Console, tmp_path: Path, pg_database: dict) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    original.build(url, pg=pg_database, schedule_type=7)
    config = tmp_path / "config.cfg"
    original.config_file(config, url)
    console.refused("import-dancecats", "--config", str(config), says="unknown schedule type 7")

    # Two connections of one user with one name (the original allowed it): refused, as
    # matching by name would point the second one's jobs at the first.
    twin = tmp_path / "twin.db"
    original.build(f"sqlite:///{twin}", pg=pg_database)
    with sa.create_engine(f"sqlite:///{twin}").begin() as db:
        db.execute(
            original.connection.update()
            .where(original.connection.c.id == 3)
            .values(name="WAREHOUSE ")
        )
    console.refused(
        "import-dancecats",
        "--from",
        f"sqlite:///{twin}",
        "--config",
        str(config),
        says="connection 'WAREHOUSE ' (id 3): the same user's connection id 1 has the same name",
    )

    # A value DanceCat refuses, found after every password was decrypted: the row is named,
    # nothing is written and no password is printed (``no_secret`` in ``refused``).
    with sa.create_engine(f"sqlite:///{twin}").begin() as db:
        db.execute(
            original.connection.update()
            .where(original.connection.c.id == 3)
            .values(name="Legacy", host="no such host!")
        )
    console.refused(
        "import-dancecats",
        "--from",
        f"sqlite:///{twin}",
        "--config",
        str(config),
        says="connection 'Legacy' (id 3): DanceCat refuses it: Host must be",
    )

    other = tmp_path / "other.db"
    sa.create_engine(f"sqlite:///{other}").connect().exec_driver_sql("CREATE TABLE t (x)").close()
    console.refused(
        "import-dancecats",
        "--from",
        f"sqlite:///{other}",
        says="not an original DanceCats database",
    )
    console.refused(
        "import-dancecats", "--from", f"sqlite:///{tmp_path / 'none.db'}", says="no SQLite file"
    )
    line = console.refused(
        "import-dancecats",
        "--from",
        "mysql://root:Pg-Secret-4242!@127.0.0.1:1/x",
        says="cannot read the original database",
    )
    assert "Pg-Secret" not in line
    console.refused(
        "import-dancecats",
        "--from",
        url,
        "--config",
        str(config),
        "--timezone",
        "Mars/Base",
        says="not an IANA time zone",
    )

    ran = tmp_path / "ran"
    evil = tmp_path / "evil.cfg"
    evil.write_text(
        f"import os\nDB_ENCRYPT_KEY = 'x'\nos.system('touch {ran}')\n", encoding="utf-8"
    )
    console.refused(
        "import-dancecats", "--config", str(evil), says="line 1: not a KEY = value line"
    )
    nul = tmp_path / "nul.cfg"
    nul.write_bytes(b"DB_ENCRYPT_KEY = 'x'\x00\n")
    console.refused("import-dancecats", "--config", str(nul), says="nul.cfg")
    computed = tmp_path / "computed.cfg"
    computed.write_text("MAIL_PASSWORD = 'Mail-' + 'Secret-555'\n", encoding="utf-8")
    console.refused(
        "import-dancecats", "--config", str(computed), says="MAIL_PASSWORD is not set to a literal"
    )
    assert not ran.exists()
    assert console.json("user", "list") == []


def test_config_lines_load_as_settings(console: Console, tmp_path: Path, pg_database: dict) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    original.build(url, pg=pg_database)
    config = tmp_path / "config.cfg"
    original.config_file(config, url)
    out = console.ok("import-dancecats", "--config", str(config), "--dry-run")
    ini = out[out.index("\n[app:main]\n") :]
    assert "smtp_password" in ini and "DANCECAT_SMTP_PASSWORD" in ini
    assert "# SECRET_KEY: not carried over" in ini and "# REDISLITE_PATH: not used" in ini
    assert "# DB_ENCRYPT_KEY: not carried over" in ini
    path = tmp_path / "dancecat.ini"
    path.write_text(ini, encoding="utf-8")
    settings = {s["key"]: s["value"] for s in console.json("-c", str(path), "settings")}
    assert settings["QUERY_TEST_LIMIT"] == "250"
    assert settings["FREQUENCY_INTERVAL_SECONDS"] == "30"
    assert settings["JOB_RESULT_VALID_SECONDS"] == "7200"
    assert settings["SMTP_HOST"] == "smtp.example.com" and settings["SMTP_PORT"] == "587"
    assert settings["SMTP_SECURITY"] == "starttls" and settings["SMTP_USER"] == "reports"


def test_original_console_names_work(console: Console) -> None:
    assert "Added" not in console.ok("add_allowed_user", "dora@example.com")
    assert [u["email"] for u in console.json("user", "list")] == ["dora@example.com"]
    assert "app database ready" in console.ok("db_create_all")
    assert "add_allowed_user" in console.ok("--help")


def test_original_hash_format() -> None:
    from dancecat_core.crypto import from_dancecats_hash, verify_password

    stored = original.encrypt_password("pw-of-the-original")
    tagged = from_dancecats_hash(stored)
    assert tagged is not None and verify_password(tagged, "pw-of-the-original")
    assert not verify_password(tagged, "pw-of-the-originaL")
    for odd in ("plain", "abc:def", stored.upper(), stored + ":x", None):
        assert from_dancecats_hash(odd) is None


def test_rc4_of_the_fixture_is_rc4() -> None:
    """The fixture's RC4 (any key length, like pycrypto) equals ``cryptography``'s on a key
    length that one accepts."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
    from cryptography.hazmat.primitives.ciphers import Cipher

    key, data = b"sixteen byte key", b"attack at dawn, and again at dusk"
    expected = Cipher(ARC4(key), mode=None).encryptor().update(data)
    assert original.arc4(key, data) == expected


def test_start_from_the_original_fields() -> None:
    """The original moved ``nextRun`` on each run and clamped a 31st to shorter months; the
    start comes from the minute, hour, weekday and day the user chose."""
    from dancecat_core.importer import _start
    from dancecat_core.models import ScheduleType

    def row(kind: int, next_run: dt.datetime, **chosen: int) -> dict:
        return {**original.schedule_fields(kind, next_run), **chosen, "nextRun": next_run}

    clamped = dt.datetime(2031, 11, 30, 7, 15)  # relativedelta(day=31) in November
    monthly = row(original.MONTHLY, clamped, dayOfMonth=31)
    assert _start(monthly, ScheduleType.MONTHLY) == dt.datetime(2031, 10, 31, 7, 15)
    weekly = row(original.WEEKLY, dt.datetime(2031, 11, 30, 7, 15), dayOfWeek=2)  # a Sunday
    assert _start(weekly, ScheduleType.WEEKLY) == dt.datetime(2031, 11, 26, 7, 15)
    hourly = row(original.HOURLY, dt.datetime(2031, 11, 30, 7, 15, 42), minuteOfHour=15)
    assert _start(hourly, ScheduleType.HOURLY) == dt.datetime(2031, 11, 30, 7, 15)

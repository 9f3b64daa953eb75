"""Bring an original DanceCats (2016) installation over: ``dancecat import-dancecats``.

The original's database (MySQL, PostgreSQL or SQLite) is read as it is, never written, and
everything goes in through DanceCat's own services, so every rule applies as if typed in:
validation, names unique per owner, passwords encrypted under DanceCat's keys. It all
happens in one transaction: a refusal (a wrong ``DB_ENCRYPT_KEY``, a schema that is not the
original's, an unknown schedule type, a value DanceCat refuses) names the original row and
writes nothing; ``dry_run`` does the whole import and rolls it back.

What the original had that DanceCat has no place for is reported, not dropped silently:
its run records (trackers) and results (kept in Redis), deleted jobs and schedules, once
schedules whose time has passed, connections to a database no installed driver serves.
Everyone in the original saw every job and connection, so they come over ``shared``.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from dancecat_core import schedules as math
from dancecat_core.crypto import from_dancecats_hash
from dancecat_core.errors import DancecatError, NotFound, ValidationError
from dancecat_core.inputs.connection import ConnectionInput
from dancecat_core.inputs.job import JobInput
from dancecat_core.inputs.schedule import ScheduleInput
from dancecat_core.models import AllowedEmail, Connection, Job, ScheduleType, User, utcnow
from dancecat_core.original_crypto import WrongKey, decrypt_connection_password
from dancecat_core.services import accounts, connections, jobs, naming, schedules, validation

if TYPE_CHECKING:
    from dancecat_core.runtime import Runtime

Row = Mapping[str, Any]

# The columns read from each of the original's tables (its ``DanceCats/Models.py``); a
# database without them is not the original's. Optional tables may be absent (older
# versions of the original).
ORIGINAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "allowed_email": ("id", "email"),
    "user": ("id", "email", "password", "isActive", "createdOn", "lastLogin"),
    "connection": (
        "id",
        "name",
        "type",
        "host",
        "port",
        "userName",
        "password",
        "database",
        "userId",
        "version",
    ),
    "job": (
        "id",
        "name",
        "annotation",
        "connectionId",
        "commands",
        "userId",
        "noOfExecuted",
        "jobType",
        "isDeleted",
    ),
    "job_mail_to": ("jobId", "emailAddress", "enable"),
    "schedule": (
        "id",
        "jobId",
        "isActive",
        "minuteOfHour",
        "hourOfDay",
        "dayOfWeek",
        "dayOfMonth",
        "scheduleType",
        "nextRun",
        "isDeleted",
    ),
    "job_feature": ("jobId", "featureName", "featureValue"),
    "track_job_run": ("id",),
}
OPTIONAL_TABLES = frozenset({"job_feature", "track_job_run"})

# The original's Constants: connection types, job types, schedule types, a job feature.
DRIVERS = {1: "mysql", 2: "mssql", 3: "postgresql"}
DRIVER_LABELS = {1: "MySQL", 2: "SQL Server", 3: "PostgreSQL"}
QUERY_JOB = 1
QUERY_PREFIX = "/* QUERY STRING */\n"  # put in front of every query by the original
TIMEOUT_FEATURE = "queryTimeOut"
SCHEDULE_TYPES = {
    0: ScheduleType.ONCE,
    1: ScheduleType.HOURLY,
    2: ScheduleType.DAILY,
    3: ScheduleType.WEEKLY,
    4: ScheduleType.MONTHLY,
}


class ImportRefused(DancecatError):
    """The original installation cannot be imported as it is; nothing was written."""


@attrs.define
class Report:
    """What the import did (or, in a dry run, would do), one line per object."""

    lines: list[str] = attrs.field(factory=list)
    counts: Counter[str] = attrs.field(factory=Counter)

    def add(self, kind: str, what: str, outcome: str, count: str) -> None:
        self.lines.append(f"{kind} {what}: {outcome}")
        self.counts[count] += 1

    def note(self, text: str) -> None:
        self.lines.append(text)


@attrs.frozen
class Original:
    """The original's rows by table (only the columns of ``ORIGINAL_COLUMNS``)."""

    tables: Mapping[str, Sequence[Row]]

    def rows(self, table: str) -> Sequence[Row]:
        return self.tables.get(table, ())


# -- reading the original ------------------------------------------------------------------


def source_engine(url_text: str) -> Engine:
    """An engine on the original's database, read-only where the driver allows it."""
    try:
        url = make_url(url_text)
    except sa.exc.ArgumentError:
        raise ImportRefused("--from: not a database URL (such as mysql://user@host/db)") from None
    backend = url.get_backend_name()
    if backend in ("mysql", "mariadb"):
        url = url.set(drivername="mysql+pymysql")
    elif backend in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg2")
    elif backend == "sqlite":
        path = Path(url.database or "")
        if not url.database or url.database == ":memory:" or not path.is_file():
            raise ImportRefused(f"--from: no SQLite file {url.database or ''!r}")
        url = url.set(database=f"file:{path.resolve()}?mode=ro", query={"uri": "true"})
    else:
        raise ImportRefused(
            f"--from: {backend!r} databases are not read; the original ran on MySQL, "
            "PostgreSQL or SQLite"
        )
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def _database_error(exc: sa.exc.SQLAlchemyError) -> ImportRefused:
    cause = getattr(exc, "orig", None) or exc
    return ImportRefused(f"cannot read the original database: {cause}")


def read_original(engine: Engine) -> Original:
    """Every table the import needs, checked against the original's schema first."""
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            present = set(inspector.get_table_names())
            metadata = sa.MetaData()
            tables: dict[str, list[Row]] = {}
            for name, columns in ORIGINAL_COLUMNS.items():
                if name not in present:
                    if name in OPTIONAL_TABLES:
                        continue
                    raise ImportRefused(
                        f"not an original DanceCats database: it has no table {name!r}"
                    )
                have = {column["name"] for column in inspector.get_columns(name)}
                missing = [column for column in columns if column not in have]
                if missing:
                    raise ImportRefused(
                        f"not an original DanceCats database: table {name!r} has no column "
                        f"{', '.join(missing)}"
                    )
                table = sa.Table(name, metadata, autoload_with=conn)
                query = sa.select(*(table.c[column] for column in columns))
                if "id" in columns:
                    query = query.order_by(table.c["id"])
                tables[name] = [dict(row) for row in conn.execute(query).mappings()]
    except sa.exc.SQLAlchemyError as exc:
        raise _database_error(exc) from None
    finally:
        engine.dispose()
    return Original(tables)


# -- importing -----------------------------------------------------------------------------


def import_original(
    runtime: Runtime,
    original: Original,
    *,
    key: str | None,
    timezone: str,
    dry_run: bool,
    now: dt.datetime | None = None,
) -> Report:
    """Import ``original`` in one transaction (rolled back when ``dry_run``)."""
    zone = math.zone(timezone, "--timezone")
    _check_schedule_types(original)
    _check_unique_names(original, "connection", lambda row: True)
    _check_unique_names(original, "job", lambda row: not row["isDeleted"])
    passwords = _passwords(original, key)  # a wrong key stops everything before any write
    report = Report()
    session = runtime.session_factory()
    try:
        users = _users(session, original, zone, report)
        kept = _connections(runtime, session, original, users, passwords, report)
        added = _jobs(runtime, session, original, users, kept, report)
        _schedules(session, original, added, timezone, now or utcnow(), report)
        _not_imported(session, original, report)
        if dry_run:
            session.rollback()
        else:
            session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    return report


def _local(value: Any, zone: dt.tzinfo) -> dt.datetime | None:
    """An original naive local time as UTC (it kept ``datetime.now()``, the server's time)."""
    if not isinstance(value, dt.datetime):
        return None
    return math.to_utc(value.replace(tzinfo=None), zone)


def _check_schedule_types(original: Original) -> None:
    for row in original.rows("schedule"):
        if not row["isDeleted"] and row["scheduleType"] not in SCHEDULE_TYPES:
            raise ImportRefused(
                f"schedule id {row['id']} (job id {row['jobId']}): unknown schedule type "
                f"{row['scheduleType']!r} (the original's are 0 once, 1 hourly, 2 daily, "
                "3 weekly, 4 monthly)"
            )


def _check_unique_names(original: Original, table: str, counts: Callable[[Row], bool]) -> None:
    """The original let one user give two connections (or jobs) the same name; DanceCat
    does not, and matching by name would point the second one's jobs at the first."""
    emails = {row["id"]: str(row["email"]).strip().lower() for row in original.rows("user")}
    seen: dict[tuple[str, str], Row] = {}
    for row in original.rows(table):
        if not counts(row):
            continue
        key = (emails.get(row["userId"], str(row["userId"])), naming.same_name_key(row["name"]))
        first = seen.setdefault(key, row)
        if first is not row:
            raise ImportRefused(
                f"{table} {row['name']!r} (id {row['id']}): the same user's {table} id "
                f"{first['id']} has the same name, and DanceCat names are unique per owner: "
                "rename one in the original and import again"
            )


def _passwords(original: Original, key: str | None) -> dict[int, str]:
    """Every stored connection password in clear, by the original's connection id."""
    clear: dict[int, str] = {}
    for row in original.rows("connection"):
        if not row["password"]:
            continue
        what = f"connection {row['name']!r} (id {row['id']})"
        if key is None:
            raise ImportRefused(
                # Worded without "password:" before the advice: the value masker would
                # take the words after it for a password.
                f"{what} has a password stored; to read it, give the original's config "
                "file (--config) for its DB_ENCRYPT_KEY"
            )
        try:
            clear[row["id"]] = decrypt_connection_password(row["password"], key, row["version"])
        except WrongKey as exc:
            raise ImportRefused(
                f"{what}: its stored password {exc}: is DB_ENCRYPT_KEY the original's?"
            ) from None
    return clear


def _email(value: Any, what: str) -> str:
    try:
        return validation.email(value)
    except ValidationError as exc:
        raise ImportRefused(f"{what}: {exc}") from None


def _users(
    session: Session, original: Original, zone: dt.tzinfo, report: Report
) -> dict[int, User]:
    """The allowed emails, then the users; returns the original user id -> DanceCat user."""
    known = set(session.scalars(sa.select(User.email)))
    for row in original.rows("allowed_email"):
        address = _email(row["email"], f"allowed email id {row['id']}")
        if session.scalars(sa.select(AllowedEmail).where(AllowedEmail.email == address)).first():
            report.add("allowed email", address, "already present", "present")
        else:
            accounts.allow_email(session, address)
            report.add("allowed email", address, "added", "added")
    users: dict[int, User] = {}
    for row in original.rows("user"):
        address = _email(row["email"], f"user id {row['id']}")
        kept_hash = from_dancecats_hash(row["password"])
        user = accounts.find_user(session, address)
        if user is None:
            accounts.allow_email(session, address)
            user = accounts.find_user(session, address)
            assert user is not None  # allow_email creates it
        users[row["id"]] = user
        if address in known and (user.password_hash is not None or kept_hash is None):
            report.add("user", address, "already present", "present")
            continue
        if kept_hash is not None:
            user.password_hash = kept_hash
            how = "added, password kept (turned into argon2 at the first sign-in)"
        else:
            how = (
                "added; its stored hash is not in the original's format: "
                "sets a new password at the first sign-in"
            )
        user.created_at = _local(row["createdOn"], zone) or user.created_at
        user.last_login_at = _local(row["lastLogin"], zone)
        if not row["isActive"]:
            accounts.disable(session, None, user)
            how += " (disabled, as in the original)"
        report.add("user", address, how, "added")
    session.flush()
    return users


def _owner(users: Mapping[int, User], row: Row, what: str) -> User:
    try:
        return users[row["userId"]]
    except KeyError:
        raise ImportRefused(
            f"{what}: its user id {row['userId']} is not in the original's user table"
        ) from None


def _existing(
    session: Session, model: type[Connection] | type[Job], owner: User, name: str
) -> Connection | Job | None:
    """The owner's live object with the same name (``naming``'s rule), if there is one."""
    key = naming.same_name_key(name)
    found = session.scalars(
        sa.select(model)
        .where(model.owner_id == owner.id, model.deleted_at.is_(None))
        .order_by(model.id)
    )
    return next((obj for obj in found if naming.same_name_key(obj.name) == key), None)


def _refused(what: str, exc: DancecatError) -> ImportRefused:
    return ImportRefused(f"{what}: DanceCat refuses it: {exc}")


def _connections(
    runtime: Runtime,
    session: Session,
    original: Original,
    users: Mapping[int, User],
    passwords: Mapping[int, str],
    report: Report,
) -> dict[int, Connection]:
    """Original connection id -> the DanceCat connection (added or already present)."""
    kept: dict[int, Connection] = {}
    for row in original.rows("connection"):
        what = f"connection {row['name']!r} (id {row['id']})"
        owner = _owner(users, row, what)
        driver = DRIVERS.get(row["type"])
        if driver is None:
            raise ImportRefused(f"{what}: unknown connection type {row['type']!r}")
        shown = f"{row['name']!r} of {owner.email}"
        if driver not in runtime.drivers:
            label = DRIVER_LABELS[row["type"]]
            report.add(
                "connection", shown, f"skipped: no {label} driver is installed here", "skipped"
            )
            continue
        existing = _existing(session, Connection, owner, row["name"])
        if existing is not None:
            kept[row["id"]] = existing
            report.add("connection", shown, "already present", "present")
            continue
        data = ConnectionInput(
            name=row["name"],
            driver=driver,
            host=row["host"],
            port=row["port"] or None,
            database=row["database"],
            user=row["userName"],
            password=passwords.get(row["id"]),
            shared=True,
        )
        try:
            kept[row["id"]] = connections.create(runtime, session, owner, data)
        except (ValidationError, NotFound) as exc:
            raise _refused(what, exc) from None
        report.add("connection", shown, "added", "added")
    return kept


def _timeouts(original: Original) -> dict[int, int]:
    found: dict[int, int] = {}
    for row in original.rows("job_feature"):
        if row["featureName"] == TIMEOUT_FEATURE:
            try:
                seconds = int(row["featureValue"])
            except (TypeError, ValueError):
                raise ImportRefused(
                    f"job id {row['jobId']}: its {TIMEOUT_FEATURE} {row['featureValue']!r} "
                    "is not a number"
                ) from None
            if seconds > 0:
                found[row["jobId"]] = seconds
    return found


def _jobs(
    runtime: Runtime,
    session: Session,
    original: Original,
    users: Mapping[int, User],
    kept: Mapping[int, Connection],
    report: Report,
) -> dict[int, Job]:
    """Original job id -> the DanceCat job added now (present ones keep their schedules)."""
    timeouts = _timeouts(original)
    recipients: dict[int, list[str]] = {}
    for row in original.rows("job_mail_to"):
        if row["enable"]:
            recipients.setdefault(row["jobId"], []).append(row["emailAddress"])
    added: dict[int, Job] = {}
    for row in original.rows("job"):
        what = f"job {row['name']!r} (id {row['id']})"
        owner = _owner(users, row, what)
        shown = f"{row['name']!r} of {owner.email}"
        if row["isDeleted"]:
            report.add("job", shown, "skipped: deleted in the original", "skipped")
            continue
        if row["jobType"] != QUERY_JOB:
            report.add("job", shown, "skipped: not a query job", "skipped")
            continue
        connection = kept.get(row["connectionId"])
        if connection is None:
            report.add("job", shown, "skipped: its connection is not imported", "skipped")
            continue
        if _existing(session, Job, owner, row["name"]) is not None:
            report.add("job", shown, "already present (its schedules too)", "present")
            continue
        data = JobInput(
            name=row["name"],
            annotation=row["annotation"] or "",
            connection_id=connection.id,
            query=row["commands"].removeprefix(QUERY_PREFIX),
            timeout_seconds=timeouts.get(row["id"]),
            recipients=recipients.get(row["id"], []),
            shared=True,
        )
        try:
            job = jobs.create(runtime, session, owner, data)
        except (ValidationError, NotFound) as exc:
            raise _refused(what, exc) from None
        job.run_count = row["noOfExecuted"] or 0
        added[row["id"]] = job
        runs = f", {job.run_count} run{'' if job.run_count == 1 else 's'} counted"
        report.add("job", shown, f"added{runs}", "added")
    session.flush()
    return added


def _start(row: Row, kind: ScheduleType) -> dt.datetime:
    """The wall-clock start the original's fields say (its ``nextRun`` moves on each run;
    the minute, hour, weekday and day of month are what the user chose)."""
    start = row["nextRun"].replace(second=0, microsecond=0, tzinfo=None)
    if kind == ScheduleType.ONCE:
        return start
    start = start.replace(minute=row["minuteOfHour"])
    if kind == ScheduleType.HOURLY:
        return start
    start = start.replace(hour=row["hourOfDay"])
    if kind == ScheduleType.WEEKLY:
        return start - dt.timedelta(days=(start.weekday() - row["dayOfWeek"]) % 7)
    if kind == ScheduleType.MONTHLY:
        year, month, day = start.year, start.month, row["dayOfMonth"]
        while day > calendar.monthrange(year, month)[1]:  # a 31st: the last month that has one
            year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        return start.replace(year=year, month=month, day=day)
    return start


def _schedules(
    session: Session,
    original: Original,
    added: Mapping[int, Job],
    timezone: str,
    now: dt.datetime,
    report: Report,
) -> None:
    zone = math.zone(timezone, "--timezone")
    for row in original.rows("schedule"):
        job = added.get(row["jobId"])
        if job is None or row["isDeleted"]:
            continue  # the job is skipped or already present; a deleted schedule never runs
        kind = SCHEDULE_TYPES[row["scheduleType"]]
        what = f"schedule id {row['id']} of job {job.name!r}"
        if not isinstance(row["nextRun"], dt.datetime):
            report.add("schedule", what, "skipped: no start time stored", "skipped")
            continue
        try:
            start = _start(row, kind)
        except (ValueError, TypeError):
            raise ImportRefused(f"{what}: its stored minute, hour or day is out of range") from None
        shown = f"{kind.value} from {start:%Y-%m-%d %H:%M} {timezone} of job {job.name!r}"
        if kind == ScheduleType.ONCE and math.to_utc(start, zone) <= now:
            report.add("schedule", shown, "skipped: its one run is past", "skipped")
            continue
        data = ScheduleInput(
            type=kind.value,
            start=f"{start:%Y-%m-%d %H:%M}",
            timezone=timezone,
            active=bool(row["isActive"]),
        )
        owner = session.get(User, job.owner_id)
        try:
            schedules.create(session, owner, job.id, data, default_timezone=timezone, now=now)
        except (ValidationError, NotFound) as exc:
            raise _refused(what, exc) from None
        state = "" if row["isActive"] else " (inactive, as in the original)"
        report.add("schedule", shown, f"added{state}", "added")


def _not_imported(session: Session, original: Original, report: Report) -> None:
    runs = len(original.rows("track_job_run"))
    report.note(
        f"not imported: the original's {runs} run record(s) (trackers) and their results: "
        "it kept results in Redis; DanceCat starts its run history afresh"
    )
    if not session.scalar(sa.select(sa.func.count()).select_from(User).where(User.is_admin)):
        report.note(
            "no admin yet: the original had none; make one with "
            "`dancecat add-allowed-user EMAIL --admin`"
        )

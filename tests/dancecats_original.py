"""An original DanceCats (2016) installation, built the way the original builds it.

The tables are its ``DanceCats/Models.py`` (ViiSiX/DanceCats, release 0.1.3) transcribed
column for column into SQLAlchemy Core (Flask-SQLAlchemy's table names: ``AllowedEmail``
-> ``allowed_email``...). The rows are written as the original writes them: passwords
hashed by its ``Helpers.encrypt_password``, connection passwords encrypted by its
``Helpers.aes_encrypt`` (model version 2) or ``rc4_encrypt`` (version 1) under
``DB_ENCRYPT_KEY``, queries behind the ``/* QUERY STRING */`` line its ``QueryDataJob``
adds, schedules' fields and next run from its ``Schedule.update_start_time`` and
``update_next_run``, times as naive local ``datetime.now()``.

The helpers below transcribe the original's Python 2 code with ``cryptography`` standing
in for pycrypto (same algorithms, same byte layout).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import uuid
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from dateutil.relativedelta import relativedelta

metadata = sa.MetaData()


def _pk() -> sa.Column:
    return sa.Column("id", sa.Integer, primary_key=True, autoincrement=True)


def _version() -> sa.Column:
    return sa.Column("version", sa.Integer, index=True, nullable=False)


allowed_email = sa.Table(
    "allowed_email",
    metadata,
    _pk(),
    sa.Column("email", sa.String(255), index=True, unique=True, nullable=False),
    _version(),
)
user = sa.Table(
    "user",
    metadata,
    _pk(),
    sa.Column("email", sa.String(255), index=True, unique=True, nullable=False),
    sa.Column("password", sa.String(255), nullable=False),
    sa.Column("isActive", sa.Boolean, nullable=False, default=True),
    sa.Column("createdOn", sa.DateTime, default=dt.datetime.now),
    sa.Column("lastLogin", sa.DateTime, nullable=True),
    sa.Column("lastUpdated", sa.DateTime, default=dt.datetime.now),
    sa.Column("version", sa.Integer, index=False, nullable=False),
)
connection = sa.Table(
    "connection",
    metadata,
    _pk(),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("type", sa.SmallInteger, nullable=False),
    sa.Column("host", sa.String(100), nullable=False),
    sa.Column("port", sa.Integer, nullable=True),
    sa.Column("userName", sa.String(100), nullable=False),
    sa.Column("password", sa.TEXT, nullable=True),
    sa.Column("database", sa.String(100), nullable=False),
    sa.Column("userId", sa.Integer, sa.ForeignKey("user.id"), nullable=False),
    sa.Column("lastUpdated", sa.DateTime, default=dt.datetime.now),
    _version(),
)
job = sa.Table(
    "job",
    metadata,
    _pk(),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("annotation", sa.Text),
    sa.Column("connectionId", sa.Integer, sa.ForeignKey("connection.id"), nullable=True),
    sa.Column("commands", sa.Text, nullable=False),
    sa.Column("userId", sa.Integer, sa.ForeignKey("user.id"), nullable=False),
    sa.Column("createdOn", sa.DateTime, default=dt.datetime.now),
    sa.Column("lastUpdated", sa.DateTime, default=dt.datetime.now),
    sa.Column("noOfExecuted", sa.Integer, default=0, nullable=False),
    sa.Column("jobType", sa.SmallInteger, default=0, nullable=False),
    sa.Column("isDeleted", sa.Boolean, default=False, nullable=False),
    _version(),
)
schedule = sa.Table(
    "schedule",
    metadata,
    _pk(),
    sa.Column("jobId", sa.Integer, sa.ForeignKey("job.id"), nullable=False),
    sa.Column("isActive", sa.Boolean, default=True, nullable=False),
    sa.Column("minuteOfHour", sa.SmallInteger, default=0, nullable=False),
    sa.Column("hourOfDay", sa.SmallInteger, default=0, nullable=False),
    sa.Column("dayOfWeek", sa.SmallInteger, default=0, nullable=False),
    sa.Column("dayOfMonth", sa.SmallInteger, default=1, nullable=False),
    sa.Column("scheduleType", sa.SmallInteger, default=0, nullable=False),
    sa.Column("nextRun", sa.DateTime, nullable=True),
    sa.Column("userId", sa.Integer, sa.ForeignKey("user.id"), nullable=False),
    sa.Column("createdOn", sa.DateTime, default=dt.datetime.now),
    sa.Column("lastUpdated", sa.DateTime, default=dt.datetime.now),
    sa.Column("isDeleted", sa.Boolean, default=False, nullable=False),
    _version(),
)
track_job_run = sa.Table(
    "track_job_run",
    metadata,
    _pk(),
    sa.Column("jobId", sa.Integer, sa.ForeignKey("job.id"), nullable=False),
    sa.Column("scheduleId", sa.Integer, sa.ForeignKey("schedule.id"), nullable=True),
    sa.Column("scheduledOn", sa.DateTime, default=dt.datetime.now, nullable=False),
    sa.Column("ranOn", sa.DateTime, nullable=True),
    sa.Column("duration", sa.Integer, default=0, nullable=False),
    sa.Column("status", sa.SmallInteger, default=0, nullable=False),
    sa.Column("errorString", sa.Text, nullable=True),
    _version(),
)
job_mail_to = sa.Table(
    "job_mail_to",
    metadata,
    _pk(),
    sa.Column("jobId", sa.Integer, sa.ForeignKey("job.id"), nullable=False),
    sa.Column("emailAddress", sa.String(100), nullable=False),
    sa.Column("enable", sa.Boolean, default=True, nullable=False),
    sa.UniqueConstraint("jobId", "emailAddress", name="job_email_unq"),
)
job_feature = sa.Table(
    "job_feature",
    metadata,
    sa.Column("jobId", sa.Integer, sa.ForeignKey("job.id"), primary_key=True),
    sa.Column("featureName", sa.String(255), primary_key=True),
    sa.Column("featureValue", sa.String(255), nullable=False),
    sa.Column("lastUpdated", sa.DateTime, default=dt.datetime.now),
)

# The original's Constants.
DB_MYSQL, DB_SQLSERVER, DB_POSTGRESQL = 1, 2, 3
JOB_QUERY = 1
ONCE, HOURLY, DAILY, WEEKLY, MONTHLY = range(5)


# -- Helpers.py, transcribed ---------------------------------------------------------------


def encrypt_password(password: str) -> str:
    salt = uuid.uuid4().hex
    return hashlib.sha512(salt.encode() + password.encode()).hexdigest() + ":" + salt


def arc4(key: bytes, data: bytes) -> bytes:
    """pycrypto's ``ARC4.new(key).encrypt``: any key of 1 to 256 bytes (``cryptography``'s
    RC4 takes only a few sizes; the test checks this against it on one it takes)."""
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) & 0xFF
        s[i], s[j] = s[j], s[i]
    i = j = 0
    out = []
    for byte in data:
        i = (i + 1) & 0xFF
        j = (j + s[i]) & 0xFF
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) & 0xFF])
    return bytes(out)


def rc4_encrypt(credential: str, secret: str) -> str:
    return base64.b64encode(arc4(secret.encode(), credential.encode())).decode()


def aes_key_pad(key: str) -> bytes:
    raw = key.encode()
    while len(raw) < 32:
        raw += raw
    return raw[:32]


def aes_raw_pad(raw: str) -> bytes:
    data = raw.encode("utf-8")
    if len(data) > 999:
        raise ValueError("Encrypt context was too long (>999).")
    padded = b"%03d" % len(data) + data
    length = len(padded)
    while len(padded) % 16 > 0:
        padded += base64.b64encode(os.urandom(length))[:length]
        length = len(padded)
    return padded


def aes_encrypt(credential: str, key: str) -> str:
    iv = os.urandom(16)  # written in front, unused by ECB
    encryptor = Cipher(algorithms.AES(aes_key_pad(key)), modes.ECB()).encryptor()
    body = encryptor.update(aes_raw_pad(credential)) + encryptor.finalize()
    return base64.b64encode(iv + body).decode()


# -- Models.Schedule, transcribed ----------------------------------------------------------


def schedule_fields(kind: int, start: dt.datetime, interval: int = 60) -> dict[str, Any]:
    """``Schedule.__init__``'s fields for ``start`` (``update_start_time``)."""
    fields = {
        "scheduleType": kind,
        "minuteOfHour": start.minute,
        "hourOfDay": start.hour,
        "dayOfWeek": start.weekday(),
        "dayOfMonth": start.day,
        "nextRun": start,
    }
    if start < dt.datetime.now() + relativedelta(seconds=interval):
        fields["nextRun"] = _next_run(fields, interval)
    return fields


def _next_run(f: dict[str, Any], interval: int) -> dt.datetime:
    """``update_next_run`` for a recurring schedule."""
    if f["scheduleType"] == ONCE:
        return f["nextRun"]
    next_check = dt.datetime.now() + relativedelta(seconds=interval)
    if next_check <= f["nextRun"]:
        return f["nextRun"]
    run = dt.datetime.now().replace(second=0)
    if f["scheduleType"] == HOURLY:
        run += relativedelta(minute=f["minuteOfHour"])
        step = relativedelta(hours=1)
    elif f["scheduleType"] == DAILY:
        run += relativedelta(minute=f["minuteOfHour"], hour=f["hourOfDay"])
        step = relativedelta(days=1)
    elif f["scheduleType"] == WEEKLY:
        run += relativedelta(minute=f["minuteOfHour"], hour=f["hourOfDay"], weekday=f["dayOfWeek"])
        step = relativedelta(weeks=1)
    else:
        run += relativedelta(minute=f["minuteOfHour"], hour=f["hourOfDay"], day=f["dayOfMonth"])
        step = relativedelta(months=1)
    while next_check >= run:
        run += step
    return max(f["nextRun"], run)


# -- an installation -----------------------------------------------------------------------

ENCRYPT_KEY = "dance cats is trying to dance"
ALICE_PASSWORD = "alice-original-pw"
PG_PASSWORD = "Pg-Secret-4242!"
MY_PASSWORD = "My-Secret-7777?"
RC4_PASSWORD = "Rc4-Old-Secret-31"
SECRETS = (ALICE_PASSWORD, PG_PASSWORD, MY_PASSWORD, RC4_PASSWORD, ENCRYPT_KEY)


def build(url: str, *, pg: dict[str, Any], key: str = ENCRYPT_KEY, schedule_type: int = DAILY):
    """Create the original's schema at ``url`` and fill it like a small team would."""
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    now = dt.datetime.now().replace(microsecond=0)
    with engine.begin() as db:
        db.execute(
            allowed_email.insert(),
            [{"email": e, "version": 1} for e in ("alice@example.com", "bob@example.com")],
        )
        db.execute(
            user.insert(),
            [
                {
                    "id": 1,
                    "email": "alice@example.com",
                    "password": encrypt_password(ALICE_PASSWORD),
                    "isActive": True,
                    "createdOn": now - dt.timedelta(days=400),
                    "lastLogin": now - dt.timedelta(days=2),
                    "version": 1,
                },
                {
                    "id": 2,
                    "email": "carol@example.com",
                    "password": encrypt_password("carol-pw-whatever"),
                    "isActive": False,
                    "createdOn": now - dt.timedelta(days=300),
                    "lastLogin": None,
                    "version": 1,
                },
            ],
        )
        db.execute(
            connection.insert(),
            [
                {
                    "id": 1,
                    "name": "Warehouse",
                    "type": DB_POSTGRESQL,
                    "host": pg["host"],
                    "port": pg["port"],
                    "userName": pg["user"],
                    "password": aes_encrypt(PG_PASSWORD, key),
                    "database": pg["database"],
                    "userId": 1,
                    "version": 2,
                },
                {
                    "id": 2,
                    "name": "Shop",
                    "type": DB_MYSQL,
                    "host": "127.0.0.1",
                    "port": None,
                    "userName": "reporter",
                    "password": aes_encrypt(MY_PASSWORD, key),
                    "database": "shop",
                    "userId": 2,
                    "version": 2,
                },
                {
                    "id": 3,
                    "name": "Legacy",
                    "type": DB_MYSQL,
                    "host": "10.0.0.9",
                    "port": 3307,
                    "userName": "old",
                    "password": rc4_encrypt(RC4_PASSWORD, key),
                    "database": "old",
                    "userId": 1,
                    "version": 1,
                },
                {
                    "id": 4,
                    "name": "Accounting",
                    "type": DB_SQLSERVER,
                    "host": "10.0.0.10",
                    "port": None,
                    "userName": "sa",
                    "password": None,
                    "database": "books",
                    "userId": 1,
                    "version": 2,
                },
            ],
        )
        db.execute(
            job.insert(),
            [
                {
                    "id": 1,
                    "name": "Daily numbers",
                    "annotation": "what the boss reads at nine",
                    "connectionId": 1,
                    "commands": "/* QUERY STRING */\nSELECT 41 + 1 AS answer",
                    "userId": 1,
                    "noOfExecuted": 37,
                    "jobType": JOB_QUERY,
                    "isDeleted": False,
                    "version": 3,
                },
                {
                    "id": 2,
                    "name": "Orders",
                    "annotation": None,
                    "connectionId": 2,
                    "commands": "/* QUERY STRING */\nSELECT * FROM orders",
                    "userId": 2,
                    "noOfExecuted": 0,
                    "jobType": JOB_QUERY,
                    "isDeleted": False,
                    "version": 3,
                },
                {
                    "id": 3,
                    "name": "Old report",
                    "annotation": None,
                    "connectionId": 1,
                    "commands": "/* QUERY STRING */\nSELECT 1",
                    "userId": 1,
                    "noOfExecuted": 5,
                    "jobType": JOB_QUERY,
                    "isDeleted": True,
                    "version": 3,
                },
                {
                    "id": 4,
                    "name": "Ledger",
                    "annotation": None,
                    "connectionId": 4,
                    "commands": "/* QUERY STRING */\nSELECT 2",
                    "userId": 1,
                    "noOfExecuted": 1,
                    "jobType": JOB_QUERY,
                    "isDeleted": False,
                    "version": 3,
                },
            ],
        )
        db.execute(
            job_feature.insert(),
            [{"jobId": 1, "featureName": "queryTimeOut", "featureValue": "90"}],
        )
        db.execute(
            job_mail_to.insert(),
            [
                {"jobId": 1, "emailAddress": "boss@example.com", "enable": True},
                {"jobId": 1, "emailAddress": "former@example.com", "enable": False},
                {"jobId": 2, "emailAddress": "shop@example.com", "enable": True},
            ],
        )
        first = now.replace(hour=9, minute=30, second=0) - dt.timedelta(days=30)
        later = (now + dt.timedelta(days=3)).replace(hour=18, minute=5, second=0)
        db.execute(
            schedule.insert(),
            [
                {
                    "id": 1,
                    "jobId": 1,
                    "isActive": True,
                    "userId": 1,
                    "version": 2,
                    "isDeleted": False,
                    **schedule_fields(schedule_type, first),
                },
                {
                    "id": 2,
                    "jobId": 1,
                    "isActive": False,
                    "userId": 1,
                    "version": 2,
                    "isDeleted": False,
                    **schedule_fields(ONCE, later),
                },
                {
                    "id": 3,
                    "jobId": 1,
                    "isActive": True,
                    "userId": 1,
                    "version": 2,
                    "isDeleted": True,
                    **schedule_fields(WEEKLY, first),
                },
                {
                    "id": 4,
                    "jobId": 2,
                    "isActive": True,
                    "userId": 2,
                    "version": 2,
                    "isDeleted": False,
                    **schedule_fields(ONCE, first),
                },
            ],
        )
        db.execute(
            track_job_run.insert(),
            [{"jobId": 1, "scheduledOn": now, "status": 2, "version": 1} for _ in range(3)],
        )
    engine.dispose()
    return {"first": first, "later": later}


def config_file(path, url: str, key: str = ENCRYPT_KEY) -> None:
    """The original's ``config.cfg``, as its ``config.cfg.dist`` lays it out."""
    path.write_text(
        "WTF_CSRF_ENABLED = True\n"
        "SECRET_KEY = 'dance cats is dancing'\n\n"
        f"DB_ENCRYPT_KEY = {key!r}\n"
        "DB_TIMEOUT = 120\n\n"
        "FREQUENCY_PID = '/var/run/frequency.pid'\n"
        "FREQUENCY_INTERVAL_SECONDS = 30\n\n"
        "QUERY_TEST_LIMIT = 250\n\n"
        "JOB_RESULT_VALID_SECONDS = 7200\n"
        "JOB_WORKER_EXECUTE_TIMEOUT = 3600\n"
        "JOB_WORKER_ENQUEUE_TIMEOUT = 1800\n\n"
        f"SQLALCHEMY_DATABASE_URI = {url!r}\n"
        "SQLALCHEMY_TRACK_MODIFICATIONS = False\n\n"
        "REDISLITE_PATH = '/var/lib/dancecats/redis.db'\n"
        "MAIL_SERVER = 'smtp.example.com'\n"
        "MAIL_PORT = 587\n"
        "MAIL_USE_TLS = True\n"
        "MAIL_USERNAME = 'reports'\n"
        "MAIL_PASSWORD = 'Mail-Secret-555'\n"
        "MAIL_DEFAULT_SENDER = ('DanceCats', 'reports@example.com')\n",
        encoding="utf-8",
    )

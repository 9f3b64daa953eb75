"""Settings: one frozen value built from embedded defaults, an INI file and the environment.

Precedence, lowest first: the defaults below, the ``[app:main]`` section of the INI file named
by ``-c/--config`` or ``DANCECAT_CONFIG``, then ``DANCECAT_<KEY>`` environment variables. The
INI section is Pyramid's, so ``pserve`` and the console read the same file. With nothing set,
everything lives under ``DANCECAT_HOME`` (default ``./var``): the SQLite app database, the
huey queue file, result files and the generated secrets.
"""

from __future__ import annotations

import configparser
import os
import secrets
import zoneinfo
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
from cryptography.fernet import Fernet

from dancecat_core.errors import ConfigError
from dancecat_core.private_files import make_private_dir, tighten_file

ENV_PREFIX = "DANCECAT_"

# The example databases shipped beside the packages: the one folder SQLite connections may
# open when SQLITE_ALLOWED_DIRS is not set.
BUNDLED_EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _int(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError("must be a whole number") from None


def _positive_int(raw: str) -> int:
    value = _int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_int(raw: str) -> int:
    value = _int(raw)
    if value < 0:
        raise ValueError("must be zero or a positive integer")
    return value


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return parse


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("must be true or false")


def _list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.replace("\n", ",").split(",") if item.strip())


def _timezone(raw: str) -> str:
    try:
        zoneinfo.ZoneInfo(raw)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("is not an IANA timezone name") from None
    return raw


def _url(raw: str) -> str:
    if "://" not in raw:
        raise ValueError("must be a URL such as sqlite:///var/dancecat.sqlite")
    return raw


def _text(raw: str) -> str:
    return raw


def _server_timezone() -> str:
    """The machine's IANA zone name, or UTC when the machine does not say one."""
    tz = os.environ.get("TZ")
    if tz:
        return tz.lstrip(":")
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    return "UTC"


DEFAULT_SCRUB_PATTERNS = (
    "password",
    "passwd",
    "pwd",
    "pass_hash",
    "passhash",
    "passphrase",
    "secret",
    "userpass",
    "confidential",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "private_key",
    "privatekey",
    "private-key",
    "access_key",
    "accesskey",
    "secret_key",
    "credential",
    "auth_key",
    "session_key",
    "otp_seed",
    "totp_secret",
    "authentication_string",
    "auth_string",
    "passcode",
    "pw_hash",
    "hashed_pw",
    "recovery_code",
)

# Every key, its parser and its default. ``None`` means "derived from DANCECAT_HOME" or
# "not set"; see ``load_settings``. The README's configuration table mirrors this.
SPEC: dict[str, tuple[Callable[[str], Any], Any]] = {
    "HOME": (_text, "./var"),
    "DATABASE_URL": (_url, None),
    "SECRET_KEY": (_text, None),
    "ENCRYPTION_KEYS": (_list, None),
    "QUERY_TEST_LIMIT": (_positive_int, 100),
    "JOB_RESULT_VALID_SECONDS": (_positive_int, 86400),
    "FREQUENCY_INTERVAL_SECONDS": (_positive_int, 60),
    "DB_TIMEOUT": (_positive_int, 120),
    "CONNECT_TIMEOUT": (_positive_int, 10),
    "JOB_WORKER_EXECUTE_TIMEOUT": (_positive_int, 3600),
    "JOB_WORKER_ENQUEUE_TIMEOUT": (_positive_int, 1800),
    "RESULT_STORE": (_text, "file"),
    "RESULT_DIR": (_text, None),
    "REDIS_URL": (_text, None),
    "HUEY_FILE": (_text, None),
    "HUEY_NAME": (_text, "dancecat"),
    "WORKER_STALE_SECONDS": (_positive_int, 60),
    "WORKERS": (_positive_int, 2),
    "TIMEZONE": (_timezone, None),
    "SCRUB_COLUMN_PATTERNS": (_list, DEFAULT_SCRUB_PATTERNS),
    "SMTP_HOST": (_text, None),
    "SMTP_PORT": (_positive_int, 25),
    "SMTP_SECURITY": (_choice("none", "starttls", "ssl"), "none"),
    "SMTP_USER": (_text, None),
    "SMTP_PASSWORD": (_text, None),
    "SMTP_TIMEOUT": (_positive_int, 30),
    "MAIL_SENDER": (_text, "dancecat@localhost"),
    "MAIL_ATTACHMENT_MAX_BYTES": (_positive_int, 10 * 1024 * 1024),
    "BASE_URL": (_text, "http://127.0.0.1:6543"),
    "EMBEDDED_WORKER": (_bool, True),
    "SECURE_COOKIES": (_bool, False),
    "MAX_BODY_BYTES": (_positive_int, 1024 * 1024),
    "LOGIN_MAX_FAILURES": (_positive_int, 5),
    "LOGIN_LOCKOUT_SECONDS": (_positive_int, 300),
    "PASSWORD_MIN_LENGTH": (_positive_int, 10),
    "NOTIFY_RETRIES": (_non_negative_int, 8),
    "NOTIFY_RETRY_DELAY": (_positive_int, 30),
    "SQLITE_ALLOWED_DIRS": (_list, None),
}


@attrs.frozen
class Settings:
    """Every DanceCat setting, parsed and checked; built by ``load_settings``."""

    home: Path
    database_url: str
    secret_key: str
    encryption_keys: tuple[str, ...]
    query_test_limit: int
    job_result_valid_seconds: int
    frequency_interval_seconds: int
    db_timeout: int
    connect_timeout: int
    job_worker_execute_timeout: int
    job_worker_enqueue_timeout: int
    result_store: str
    result_dir: Path
    redis_url: str | None
    huey_file: Path
    huey_name: str
    worker_stale_seconds: int
    workers: int
    timezone: str
    scrub_column_patterns: tuple[str, ...]
    smtp_host: str | None
    smtp_port: int
    smtp_security: str
    smtp_user: str | None
    smtp_password: str | None
    smtp_timeout: int
    mail_sender: str
    mail_attachment_max_bytes: int
    base_url: str
    embedded_worker: bool
    secure_cookies: bool
    max_body_bytes: int
    login_max_failures: int
    login_lockout_seconds: int
    password_min_length: int
    notify_retries: int
    notify_retry_delay: int
    sqlite_allowed_dirs: tuple[Path, ...]
    config_file: Path | None = None

    @property
    def embedded(self) -> bool:
        """True when no queue server is configured: SqliteHuey beside the app database."""
        return self.redis_url is None


def read_ini(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``[app:main]`` section of a Pyramid-style INI file, keys upper-cased.

    Keys may be written ``query_test_limit``, ``QUERY_TEST_LIMIT`` or
    ``dancecat.query_test_limit``; Pyramid's own keys (``pyramid.*``) are ignored here.
    """
    parser = configparser.ConfigParser(interpolation=None)
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path}: no such file")
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        raise ConfigError(f"config file {path}: {exc.message.splitlines()[0]}") from None
    if not parser.has_section("app:main"):
        raise ConfigError(f"config file {path}: no [app:main] section")
    values: dict[str, str] = {}
    here = str(path.resolve().parent)
    for key, value in parser.items("app:main"):
        name = key.removeprefix("dancecat.").upper()
        if name in SPEC:
            values[name] = value.replace("%(here)s", here)
    return values


def _ensure_secret_file(path: Path, make: Callable[[], str]) -> str:
    """Read a generated secret, creating it once with mode 0600."""
    if path.exists():
        tighten_file(path)
        return path.read_text(encoding="utf-8").strip()
    make_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        value = make()
        handle.write(value + "\n")
    return value


def encryption_key_file(home: Path) -> Path:
    return home / "encryption_keys"


def read_encryption_keys(home: Path) -> tuple[str, ...]:
    """The generated key file's keys, newest first (empty if there is none)."""
    try:
        return tuple(encryption_key_file(home).read_text(encoding="utf-8").split())
    except OSError:
        return ()


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings, or raise ``ConfigError`` naming the first bad key."""
    environ = os.environ if environ is None else environ
    config_file = config_file or environ.get("DANCECAT_CONFIG") or None
    raw: dict[str, str] = {}
    if config_file:
        raw.update(read_ini(config_file))
    for key in SPEC:
        if ENV_PREFIX + key in environ:
            raw[key] = environ[ENV_PREFIX + key]

    values: dict[str, Any] = {}
    for key, (parse, default) in SPEC.items():
        if key in raw:
            try:
                values[key] = parse(raw[key])
            except (ValueError, TypeError) as exc:
                raise ConfigError(
                    f"setting {key}: {raw[key]!r} {str(exc) or 'is malformed'}"
                ) from None
        else:
            values[key] = default
    for key, value in (overrides or {}).items():
        values[key.upper()] = value

    home = Path(values["HOME"]).expanduser().absolute()
    try:
        make_private_dir(home)
    except OSError as exc:
        raise ConfigError(f"setting HOME: cannot create {home}: {exc.strerror}") from None

    secret_key = values["SECRET_KEY"] or _ensure_secret_file(
        home / "secret_key", lambda: secrets.token_urlsafe(48)
    )
    keys = values["ENCRYPTION_KEYS"] or tuple(
        _ensure_secret_file(
            encryption_key_file(home), lambda: Fernet.generate_key().decode("ascii")
        ).split()
    )
    for key in keys:
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ConfigError(
                "setting ENCRYPTION_KEYS: each key must be 32 url-safe base64-encoded bytes"
            ) from None

    return Settings(
        home=home,
        database_url=values["DATABASE_URL"] or f"sqlite:///{home / 'dancecat.sqlite'}",
        secret_key=secret_key,
        encryption_keys=tuple(keys),
        query_test_limit=values["QUERY_TEST_LIMIT"],
        job_result_valid_seconds=values["JOB_RESULT_VALID_SECONDS"],
        frequency_interval_seconds=values["FREQUENCY_INTERVAL_SECONDS"],
        db_timeout=values["DB_TIMEOUT"],
        connect_timeout=values["CONNECT_TIMEOUT"],
        job_worker_execute_timeout=values["JOB_WORKER_EXECUTE_TIMEOUT"],
        job_worker_enqueue_timeout=values["JOB_WORKER_ENQUEUE_TIMEOUT"],
        result_store=values["RESULT_STORE"],
        result_dir=Path(values["RESULT_DIR"] or home / "results").absolute(),
        redis_url=values["REDIS_URL"] or None,
        huey_file=Path(values["HUEY_FILE"] or home / "huey.sqlite").absolute(),
        huey_name=values["HUEY_NAME"] or "dancecat",
        worker_stale_seconds=values["WORKER_STALE_SECONDS"],
        workers=values["WORKERS"],
        timezone=values["TIMEZONE"] or _server_timezone(),
        scrub_column_patterns=tuple(p.lower() for p in values["SCRUB_COLUMN_PATTERNS"]),
        smtp_host=values["SMTP_HOST"] or None,
        smtp_port=values["SMTP_PORT"],
        smtp_security=values["SMTP_SECURITY"],
        smtp_user=values["SMTP_USER"] or None,
        smtp_password=values["SMTP_PASSWORD"] or None,
        smtp_timeout=values["SMTP_TIMEOUT"],
        mail_sender=values["MAIL_SENDER"],
        mail_attachment_max_bytes=values["MAIL_ATTACHMENT_MAX_BYTES"],
        base_url=values["BASE_URL"].rstrip("/"),
        embedded_worker=values["EMBEDDED_WORKER"],
        secure_cookies=values["SECURE_COOKIES"],
        max_body_bytes=values["MAX_BODY_BYTES"],
        login_max_failures=values["LOGIN_MAX_FAILURES"],
        login_lockout_seconds=values["LOGIN_LOCKOUT_SECONDS"],
        password_min_length=values["PASSWORD_MIN_LENGTH"],
        notify_retries=values["NOTIFY_RETRIES"],
        notify_retry_delay=values["NOTIFY_RETRY_DELAY"],
        sqlite_allowed_dirs=(
            (BUNDLED_EXAMPLES,)
            if values["SQLITE_ALLOWED_DIRS"] is None
            else tuple(Path(d).expanduser().absolute() for d in values["SQLITE_ALLOWED_DIRS"])
        ),
        config_file=Path(config_file) if config_file else None,
    )

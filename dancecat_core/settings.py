"""Settings: one frozen value built from embedded defaults, an INI file and the environment.

Precedence, lowest first: each setting's default, the ``[app:main]`` section of the INI file
named by ``-c/--config`` or ``DANCECAT_CONFIG``, then ``DANCECAT_<KEY>`` environment
variables. The INI section is Pyramid's, so ``pserve`` and the console read the same file.
With nothing set, everything lives under ``DANCECAT_HOME`` (default ``./var``): the SQLite app
database, the huey queue file, result files and the generated secrets.

Each setting is declared once, as a ``SettingSpec`` (key, type, default, help): core
settings by the ``setting(...)`` fields of ``Settings`` below, a plugin's by its
``dancecat_register_settings`` hook. ``dancecat settings`` lists them all, and the README's
table is their rendering (``dancecat settings --markdown``; a test keeps the two equal). A
plugin's values are read like core ones and reached as ``settings.<key in lower case>``.
"""

from __future__ import annotations

import configparser
import os
import secrets
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from cryptography.fernet import Fernet

from dancecat_core.errors import ConfigError, PluginError
from dancecat_core.plugins import get_plugin_manager
from dancecat_core.private_files import make_private_dir, tighten_file

if TYPE_CHECKING:
    import pluggy

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


def _optional_text(raw: str) -> str | None:
    return raw.strip() or None


@attrs.frozen
class SettingType:
    """How a setting's text becomes its value; ``name`` is what ``dancecat settings`` and
    the docs call it. ``parse`` raises ``ValueError`` with the end of a sentence
    ("must be a whole number") that follows the key and the given text."""

    name: str
    parse: Callable[[str], Any]


TEXT = SettingType("text", _text)
OPTIONAL_TEXT = SettingType("text (empty: unset)", _optional_text)
URL = SettingType("URL", _url)
POSITIVE_INT = SettingType("positive integer", _positive_int)
NON_NEGATIVE_INT = SettingType("zero or a positive integer", _non_negative_int)
BOOLEAN = SettingType("true or false", _bool)
LIST = SettingType("comma-separated list", _list)
TIMEZONE = SettingType("IANA time zone", _timezone)


def choice(*options: str) -> SettingType:
    """One of ``options``, in any case."""
    return SettingType(f"one of {', '.join(options)}", _choice(*options))


@attrs.frozen
class SettingSpec:
    """One setting: ``KEY`` (read as ``key`` or ``dancecat.key`` in the INI file and as
    ``DANCECAT_KEY`` in the environment), its type, its default (the parsed value; ``None``
    for unset) and what it does. ``shown_default`` says a default the value cannot (one
    derived from ``HOME``); ``secret`` values are never printed. ``origin`` is filled in
    when the spec is collected: ``core`` or the plugin that declared it."""

    key: str
    type: SettingType
    default: Any
    help: str
    shown_default: str = ""
    secret: bool = False
    origin: str = "core"

    @property
    def attribute(self) -> str:
        return self.key.lower()

    def default_text(self) -> str:
        if self.shown_default:
            return self.shown_default
        return shown_value(self.default)

    def parse(self, raw: str) -> Any:
        """The value for ``raw``, or ``ConfigError`` naming the key, in one line."""
        try:
            return self.type.parse(raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"setting {self.key}: {raw!r} {str(exc) or 'is malformed'}") from None


def shown_value(value: Any) -> str:
    """A setting's value as the docs and ``dancecat settings`` write it."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ", ".join(str(item) for item in value)
    return str(value)


def setting(
    type: SettingType,
    default: Any,
    help: str,
    *,
    shown_default: str = "",
    secret: bool = False,
) -> Any:
    """A core setting's declaration: a ``Settings`` field whose key is its name upper-cased."""
    return attrs.field(
        metadata={"setting": (type, default, help, shown_default, secret)}, repr=not secret
    )


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


@attrs.frozen
class Settings:
    """Every DanceCat setting, parsed and checked; built by ``load_settings``.

    Each ``setting(...)`` field is a core setting's one declaration. Plugins' settings are
    in ``plugin_values`` (by key) and read as attributes too: ``settings.smtp_host``.
    """

    home: Path = setting(
        TEXT,
        "./var",
        "where embedded defaults live: app database, queue file, results, secrets "
        "(created 0700, files 0600)",
    )
    database_url: str = setting(
        URL,
        None,
        "app database (SQLite, PostgreSQL `postgresql+psycopg2://…`, "
        "MariaDB/MySQL `mysql+pymysql://…`)",
        shown_default="`sqlite:///$HOME/dancecat.sqlite`",
    )
    secret_key: str = setting(
        OPTIONAL_TEXT,
        None,
        "signs session cookies and CSRF tokens",
        shown_default="generated once into `$HOME/secret_key` (0600)",
        secret=True,
    )
    encryption_keys: tuple[str, ...] = setting(
        LIST,
        None,
        "Fernet keys, comma-separated, first encrypts; connection passwords are encrypted "
        "with them",
        shown_default="generated once into `$HOME/encryption_keys` (0600)",
        secret=True,
    )
    query_test_limit: int = setting(
        POSITIVE_INT, 100, "rows in a preview (the job form's Run button)"
    )
    job_result_valid_seconds: int = setting(
        POSITIVE_INT,
        86400,
        "how long a run's result can be downloaded; then it is deleted and the tracker says "
        "Result Expired",
    )
    frequency_interval_seconds: int = setting(
        POSITIVE_INT, 60, "how often the scheduler checks for due schedules"
    )
    db_timeout: int = setting(
        POSITIVE_INT,
        120,
        "default query timeout in seconds (a job may set its own), enforced by the queried "
        "server too",
    )
    connect_timeout: int = setting(POSITIVE_INT, 10, "seconds to reach a queried database")
    job_worker_execute_timeout: int = setting(
        POSITIVE_INT, 3600, "hard limit on one run; the query is cancelled on the server"
    )
    job_worker_enqueue_timeout: int = setting(
        POSITIVE_INT, 1800, "a run still queued after this becomes Died in Queue and never runs"
    )
    result_store: str = setting(
        TEXT,
        "file",
        "a registered result store: `file` (files under `RESULT_DIR`), `database` (the app "
        "database, for a few machines without a shared disk) or `s3` (a bucket, `RESULT_S3_*`; "
        "docs/RESULTS.md says which)",
    )
    result_dir: Path = setting(
        TEXT, None, "where the `file` store keeps results", shown_default="`$HOME/results`"
    )
    redis_url: str | None = setting(
        OPTIONAL_TEXT,
        None,
        "use Redis for the queue (any number of workers on any number of machines); unset: "
        "SQLite queue file",
    )
    huey_file: Path = setting(
        TEXT, None, "the embedded queue file", shown_default="`$HOME/huey.sqlite`"
    )
    huey_name: str = setting(
        TEXT, "dancecat", "queue name (several DanceCats, or test runs, can share one Redis)"
    )
    worker_stale_seconds: int = setting(
        POSITIVE_INT,
        60,
        "a Running tracker whose worker's heartbeat is older than this is taken for dead "
        "(on the worker's own machine a dead process is seen at once; then `RUN_RETRIES`); "
        "a Queued one missing from the queue this long is enqueued again",
    )
    run_retries: int = setting(
        NON_NEGATIVE_INT,
        1,
        "times a run on a read-only connection is run again when its worker died under it "
        "(other runs fail: running their statement twice may not be safe)",
    )
    workers: int = setting(
        POSITIVE_INT,
        2,
        "worker threads of `dancecat worker` and of the embedded worker in `dancecat serve`",
    )
    embedded_worker: bool = setting(
        BOOLEAN, True, "`dancecat serve` runs the worker in-process when no `REDIS_URL` is set"
    )
    timezone: str = setting(
        TIMEZONE, None, "default timezone of new schedules", shown_default="the server's"
    )
    scrub_column_patterns: tuple[str, ...] = setting(
        LIST,
        DEFAULT_SCRUB_PATTERNS,
        "column names (matched inside names, case and separators ignored) removed from "
        "every result",
        shown_default="password, passwd, pwd, secret, token, api_key, private_key, …",
    )
    sqlite_allowed_dirs: tuple[Path, ...] = setting(
        LIST,
        None,
        "folders (comma-separated) whose files SQLite connections may open; empty: none. "
        "`DANCECAT_HOME`, `RESULT_DIR`, the queue file's folder and the app database are "
        "refused even inside them, and so is a file in a folder other users can change. "
        "Read-write SQLite connections are for admins",
        shown_default="the bundled `examples/` folder",
    )
    notify_retries: int = setting(
        NON_NEGATIVE_INT, 8, "notification retries after a failed delivery"
    )
    notify_retry_delay: int = setting(
        POSITIVE_INT, 30, "seconds before the first notification retry (doubling after)"
    )
    freshness_grace_seconds: int = setting(
        NON_NEGATIVE_INT,
        3600,
        "a scheduled job with no successful run for its schedule's interval plus this many "
        "seconds alerts its owner (docs/DELIVERY.md)",
    )
    delivery_timeout: int = setting(
        POSITIVE_INT, 30, "seconds a destination (webhook, chat...) gets to answer one try"
    )
    delivery_lease_seconds: int = setting(
        POSITIVE_INT,
        300,
        "a delivery try renews its claim while it runs; one whose claim is this old is "
        "taken for lost (its worker died) and sent again with the same delivery key",
    )
    delivery_allow_private_hosts: bool = setting(
        BOOLEAN,
        False,
        "let webhooks and chat destinations reach private, loopback and link-local "
        "addresses (this machine, your LAN, cloud metadata): see docs/DELIVERY.md before "
        "turning it on",
    )
    base_url: str = setting(
        TEXT, "http://127.0.0.1:6543", "the web app's address, for links in notifications"
    )
    secure_cookies: bool = setting(
        BOOLEAN, False, "mark session cookies Secure (set when served over https)"
    )
    trusted_proxy: str | None = setting(
        OPTIONAL_TEXT,
        None,
        "address of the reverse proxy in front of `dancecat serve` (`127.0.0.1`, or `*` "
        "when only the proxy can reach it); its X-Forwarded-Proto, -Host and -For are "
        "believed, so links and redirects carry the https address users see "
        "(docs/DEPLOY.md); unset: those headers are ignored",
    )
    max_body_bytes: int = setting(
        POSITIVE_INT, 1024 * 1024, "largest request body the web app accepts"
    )
    pull_url_rate_limit: int = setting(
        POSITIVE_INT,
        60,
        "pulls per minute each pull URL answers; more get `429` with `Retry-After` "
        "(docs/DELIVERY.md)",
    )
    login_max_failures: int = setting(
        POSITIVE_INT, 5, "failed sign-ins before an email is locked out"
    )
    login_lockout_seconds: int = setting(POSITIVE_INT, 300, "how long a locked-out email waits")
    password_min_length: int = setting(POSITIVE_INT, 10, "shortest password accepted")
    config_file: Path | None = None
    plugin_values: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    # The raw text of every key the INI file and the environment set, for settings declared
    # after loading (``with_specs``: a plugin manager's).
    sources: Mapping[str, str] = attrs.field(factory=dict, repr=False)

    @property
    def embedded(self) -> bool:
        """True when no queue server is configured: SqliteHuey beside the app database."""
        return self.redis_url is None

    def __getattr__(self, name: str) -> Any:
        """A plugin's setting, by its key in lower case (``settings.smtp_host``)."""
        if name.startswith("_") or name == "plugin_values":
            raise AttributeError(name)
        try:
            return self.plugin_values[name.upper()]
        except KeyError:
            raise AttributeError(
                f"no setting {name.upper()} (is the plugin that declares it installed?)"
            ) from None

    def with_specs(self, specs: Iterable[SettingSpec]) -> Settings:
        """These settings plus the values of ``specs`` not read yet (a plugin manager's)."""
        missing = [
            spec
            for spec in specs
            if spec.key not in self.plugin_values and spec.key not in CORE_KEYS
        ]
        if not missing:
            return self
        values = dict(self.plugin_values)
        for spec in missing:
            values[spec.key] = (
                spec.parse(self.sources[spec.key]) if spec.key in self.sources else spec.default
            )
        return attrs.evolve(self, plugin_values=values)


CORE_SETTINGS: tuple[SettingSpec, ...] = tuple(
    SettingSpec(field.name.upper(), *field.metadata["setting"])
    for field in attrs.fields(Settings)
    if "setting" in field.metadata
)
CORE_KEYS = frozenset(spec.key for spec in CORE_SETTINGS)


def collect_specs(pm: pluggy.PluginManager) -> tuple[SettingSpec, ...]:
    """Core settings, then every plugin's (``dancecat_register_settings``), each tagged
    with its origin; two declarations of one key are refused."""
    specs: dict[str, SettingSpec] = {spec.key: spec for spec in CORE_SETTINGS}
    for impl in pm.hook.dancecat_register_settings.get_hookimpls():
        for spec in impl.function() or ():
            if not isinstance(spec, SettingSpec):
                raise PluginError(
                    f"plugin {impl.plugin_name}: dancecat_register_settings must return "
                    f"SettingSpec values, not {type(spec).__name__}"
                )
            if spec.key != spec.key.upper() or not spec.key.replace("_", "").isalnum():
                raise PluginError(
                    f"plugin {impl.plugin_name}: setting key {spec.key!r} must be upper-case "
                    "letters, digits and _"
                )
            if spec.key in specs:
                raise PluginError(
                    f"setting {spec.key} is declared twice: by {specs[spec.key].origin} and "
                    f"by {impl.plugin_name}"
                )
            specs[spec.key] = attrs.evolve(spec, origin=impl.plugin_name)
    return tuple(specs.values())


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
        if key.startswith("pyramid.") or key == "use":
            continue
        values[key.removeprefix("dancecat.").upper()] = value.replace("%(here)s", here)
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


def read_sources(
    config_file: str | os.PathLike[str] | None, environ: Mapping[str, str]
) -> dict[str, str]:
    """The raw text of every setting the INI file and the environment set, by key."""
    raw: dict[str, str] = {}
    if config_file:
        raw.update(read_ini(config_file))
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX) and name != "DANCECAT_CONFIG":
            raw[name.removeprefix(ENV_PREFIX)] = value
    return raw


def _sqlite_dirs(dirs: tuple[str, ...] | None) -> tuple[Path, ...]:
    if dirs is None:
        return (BUNDLED_EXAMPLES,)
    return tuple(Path(d).expanduser().absolute() for d in dirs)


def _derived(values: dict[str, Any]) -> dict[str, Any]:
    """Values whose default depends on ``HOME`` or the machine, and the secrets generated
    once into ``HOME``; also the normal form of a few others."""
    home = Path(values["home"]).expanduser().absolute()
    try:
        make_private_dir(home)
    except OSError as exc:
        raise ConfigError(f"setting HOME: cannot create {home}: {exc.strerror}") from None
    keys = values["encryption_keys"] or tuple(
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
    return {
        "home": home,
        "database_url": values["database_url"] or f"sqlite:///{home / 'dancecat.sqlite'}",
        "secret_key": values["secret_key"]
        or _ensure_secret_file(home / "secret_key", lambda: secrets.token_urlsafe(48)),
        "encryption_keys": tuple(keys),
        "result_dir": Path(values["result_dir"] or home / "results").absolute(),
        "huey_file": Path(values["huey_file"] or home / "huey.sqlite").absolute(),
        "huey_name": values["huey_name"] or "dancecat",
        "timezone": values["timezone"] or _server_timezone(),
        "scrub_column_patterns": tuple(p.lower() for p in values["scrub_column_patterns"]),
        "base_url": values["base_url"].rstrip("/"),
        "sqlite_allowed_dirs": _sqlite_dirs(values["sqlite_allowed_dirs"]),
    }


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    specs: Sequence[SettingSpec] | None = None,
) -> Settings:
    """Build the settings, or raise ``ConfigError`` naming the first bad key.

    ``specs`` are the settings to read: by default core ones and every installed plugin's
    (which imports the plugins); ``CORE_SETTINGS`` reads core ones only, for commands that
    load no plugin (``Runtime`` reads its plugins' later, through ``with_specs``).
    """
    environ = os.environ if environ is None else environ
    config_file = config_file or environ.get("DANCECAT_CONFIG") or None
    if specs is None:
        specs = collect_specs(get_plugin_manager())
    raw = read_sources(config_file, environ)
    values = {
        spec.attribute: spec.parse(raw[spec.key]) if spec.key in raw else spec.default
        for spec in CORE_SETTINGS
    }
    values.update(_derived(values))
    settings = Settings(
        **values, config_file=Path(config_file) if config_file else None, sources=raw
    )
    return settings.with_specs(specs)

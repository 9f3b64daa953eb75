"""An original DanceCats (2016) config file, read without running it, and the DanceCat INI
lines its settings become.

The original's config is a Python file (Flask's ``from_pyfile``). Running it would run
whatever it holds, so it is parsed instead: every statement must be ``KEY = literal``
(strings, numbers, booleans, ``None``, tuples, lists, dicts of those); anything else is
refused with its line number, and never quoted (the line may hold a secret).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dancecat_core.errors import ConfigError, DancecatError
from dancecat_core.settings import SettingSpec

# The original's key -> DanceCat's key, for values that mean the same thing.
RENAMED = {
    "QUERY_TEST_LIMIT": "QUERY_TEST_LIMIT",
    "JOB_RESULT_VALID_SECONDS": "JOB_RESULT_VALID_SECONDS",
    "FREQUENCY_INTERVAL_SECONDS": "FREQUENCY_INTERVAL_SECONDS",
    "DB_TIMEOUT": "DB_TIMEOUT",
    "JOB_WORKER_EXECUTE_TIMEOUT": "JOB_WORKER_EXECUTE_TIMEOUT",
    "JOB_WORKER_ENQUEUE_TIMEOUT": "JOB_WORKER_ENQUEUE_TIMEOUT",
    "MAIL_SERVER": "SMTP_HOST",
    "MAIL_PORT": "SMTP_PORT",
    "MAIL_USERNAME": "SMTP_USER",
    "MAIL_PASSWORD": "SMTP_PASSWORD",
    "MAIL_DEFAULT_SENDER": "MAIL_SENDER",
}
# Flask-Mail's two switches become one choice.
SECURITY_SWITCHES = {"MAIL_USE_SSL": "ssl", "MAIL_USE_TLS": "starttls"}
SECURITY_KEY = "SMTP_SECURITY"
# Original keys with a use, but not as a DanceCat setting.
NOT_CARRIED = {
    "SQLALCHEMY_DATABASE_URI": "the original's database: give it as --from; DanceCat keeps "
    "its own app database (DATABASE_URL)",
    "DB_ENCRYPT_KEY": "used by this import to read connection passwords; DanceCat keeps its "
    "own keys (ENCRYPTION_KEYS)",
    "SECRET_KEY": "DanceCat generates its own (original sessions end with the move)",
}
# Original keys holding secrets even where no DanceCat setting says so.
SECRET_KEYS = frozenset({"MAIL_PASSWORD", "DB_ENCRYPT_KEY", "SECRET_KEY"})


class OriginalConfigRefused(DancecatError):
    """The original's config file holds something other than literal settings."""


def read_original_config(path: str | Path) -> dict[str, Any]:
    """The file's ``KEY = literal`` settings, in order; nothing in it is run."""
    where = Path(path)
    try:
        source = where.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise OriginalConfigRefused(f"original config {where}: cannot read it: {reason}") from None
    try:
        tree = ast.parse(source, filename=str(where))
    except SyntaxError as exc:
        raise OriginalConfigRefused(
            f"original config {where} line {exc.lineno}: not Python syntax"
        ) from None
    except (ValueError, RecursionError, MemoryError):  # a NUL byte, absurd nesting
        raise OriginalConfigRefused(f"original config {where}: not a Python file") from None
    values: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring or a bare string
        single = isinstance(node, ast.Assign) and len(node.targets) == 1
        target = node.targets[0] if single else None
        if not isinstance(target, ast.Name):
            raise OriginalConfigRefused(_refusal(where, node.lineno))
        try:
            values[target.id] = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise OriginalConfigRefused(_refusal(where, node.lineno, target.id)) from None
    return values


def _refusal(where: Path, line: int, key: str | None = None) -> str:
    what = f"{key} is not set to a literal value" if key else "not a KEY = value line"
    return (
        f"original config {where} line {line}: {what}; only literal settings are read "
        "(the file is never run): write the value itself there"
    )


def _as_text(key: str, value: Any) -> str:
    if key == "MAIL_DEFAULT_SENDER" and isinstance(value, tuple | list) and len(value) == 2:
        name, address = value
        return f"{name} <{address}>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _security(values: Mapping[str, Any]) -> str | None:
    given = [key for key in SECURITY_SWITCHES if key in values]
    if not given:
        return None
    for key in given:
        if values[key]:
            return SECURITY_SWITCHES[key]
    return "none"


def ini_lines(values: Mapping[str, Any], specs: Sequence[SettingSpec], source: str) -> list[str]:
    """The ``[app:main]`` lines for ``values``; secrets are never printed, only where to
    put them; original keys DanceCat has no use for are listed as comments."""
    by_key = {spec.key: spec for spec in specs}
    lines = [f"# DanceCat settings from {source}, for your DanceCat INI file", "[app:main]"]
    notes: list[str] = []
    wanted: list[tuple[str, str, str]] = []  # (DanceCat key, value text, original key)
    for key, value in values.items():
        if key in RENAMED:
            wanted.append((RENAMED[key], _as_text(key, value), key))
    security = _security(values)
    if security is not None:
        switches = " / ".join(key for key in SECURITY_SWITCHES if key in values)
        wanted.append((SECURITY_KEY, security, switches))
    for target, text, original in wanted:
        spec = by_key.get(target)
        if spec is None:
            notes.append(f"# {original}: {target} is not a setting here (is its plugin installed?)")
            continue
        secret = spec.secret or original in SECRET_KEYS
        if "\n" in text or "\r" in text:
            notes.append(f"# {original}: its value spans lines; set {target} by hand")
            continue
        try:
            spec.parse(text)
        except ConfigError as exc:
            told = "its value" if secret else f"{text!r} {_reason(exc, target, text)}"
            notes.append(f"# {original}: {told}: set {target} by hand")
            continue
        if secret:
            notes.append(
                f"# {target.lower()} = (secret, from {original}: not printed) put it in the "
                f"environment as DANCECAT_{target}, or here if only DanceCat's user can read "
                "this file"
            )
        else:
            lines.append(f"{target.lower()} = {text}")
    for key in values:
        if key in NOT_CARRIED:
            notes.append(f"# {key}: not carried over: {NOT_CARRIED[key]}")
        elif key not in RENAMED and key not in SECURITY_SWITCHES and key.isupper():
            notes.append(f"# {key}: not used by DanceCat")
    return lines + notes


def _reason(exc: ConfigError, key: str, text: str) -> str:
    """The parse refusal without its "setting KEY: 'value'" lead (the line says both)."""
    return str(exc).removeprefix(f"setting {key}: {text!r}").strip()

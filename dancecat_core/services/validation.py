"""Checks shared by every input: each failure names its field and says why.

``field`` is the internal name a refusal carries (what the API's ``field`` says);
``label`` is how the message names it to a person ("Timeout (seconds)"), the field's
name when not given.
"""

from __future__ import annotations

import re
from typing import Any

from dancecat_core.errors import ValidationError

# Deliberately simple: one @, a dot in the domain, no spaces. Delivery is the real test.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def _unicode(value: str, field: str, label: str) -> None:
    if "\x00" in value:
        raise ValidationError(f"{label} must not contain NUL characters", field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{label} must be valid Unicode text", field) from None


def text(
    value: Any, field: str, *, max_length: int, required: bool = True, label: str | None = None
) -> str:
    label = label or field
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationError(f"{label} must be text", field)
    # One line ending whatever the browser or OS sent: textareas submit CRLF.
    value = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    _unicode(value, field, label)
    if required and not value:
        raise ValidationError(f"{label} is required", field)
    if len(value) > max_length:
        raise ValidationError(f"{label} must be at most {max_length:,} characters", field)
    return value


def secret(value: Any, field: str, *, max_length: int, label: str | None = None) -> str:
    """Text kept exactly as typed (a password's spaces are part of it)."""
    label = label or field
    if not isinstance(value, str):
        raise ValidationError(f"{label} must be text", field)
    _unicode(value, field, label)
    if len(value) > max_length:
        raise ValidationError(f"{label} must be at most {max_length:,} characters", field)
    return value


def optional_int(
    value: Any, field: str, *, minimum: int, maximum: int, label: str | None = None
) -> int | None:
    label = label or field
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValidationError(f"{label} must be a whole number", field)
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ValidationError(f"{label} must be a whole number", field) from None
    if not minimum <= number <= maximum:
        raise ValidationError(f"{label} must be between {minimum} and {maximum}", field)
    return number


def email(value: Any, field: str = "email", *, label: str | None = None) -> str:
    label = label or field
    address = text(value, field, max_length=254, label=label).lower()
    if not _EMAIL.match(address):
        raise ValidationError(f"{label}: {address!r} is not a valid email address", field)
    return address


def email_list(value: Any, field: str, *, label: str | None = None) -> list[str]:
    """Distinct addresses in the order given. An empty entry is refused like any other
    bad address (a form drops its blank rows before this)."""
    label = label or field
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ValidationError(f"{label} must be a list of email addresses", field)
    found: list[str] = []
    for item in value:
        address = email(item, field, label=label)
        if address not in found:
            found.append(address)
    return found


def boolean(value: Any, field: str, *, label: str | None = None) -> bool:
    if isinstance(value, bool):
        return value
    if value in (None, "", "0", "false", "off", "no"):
        return False
    if value in ("1", "true", "on", "yes", 1):
        return True
    raise ValidationError(f"{label or field} must be true or false", field)

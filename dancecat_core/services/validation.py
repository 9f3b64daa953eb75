"""Checks shared by every input: each failure names its field and says why."""

from __future__ import annotations

import re
from typing import Any

from dancecat_core.errors import ValidationError

# Deliberately simple: one @, a dot in the domain, no spaces. Delivery is the real test.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def text(value: Any, field: str, *, max_length: int, required: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be text", field)
    # One line ending whatever the browser or OS sent: textareas submit CRLF.
    value = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if "\x00" in value:
        raise ValidationError(f"{field} must not contain NUL characters", field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{field} must be valid Unicode text", field) from None
    if required and not value:
        raise ValidationError(f"{field} is required", field)
    if len(value) > max_length:
        raise ValidationError(f"{field} must be at most {max_length} characters", field)
    return value


def optional_int(value: Any, field: str, *, minimum: int, maximum: int) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValidationError(f"{field} must be a whole number", field)
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ValidationError(f"{field} must be a whole number", field) from None
    if not minimum <= number <= maximum:
        raise ValidationError(f"{field} must be between {minimum} and {maximum}", field)
    return number


def email(value: Any, field: str = "email") -> str:
    address = text(value, field, max_length=254).lower()
    if not _EMAIL.match(address):
        raise ValidationError(f"{field}: {address!r} is not a valid email address", field)
    return address


def boolean(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in (None, "", "0", "false", "off", "no"):
        return False
    if value in ("1", "true", "on", "yes", 1):
        return True
    raise ValidationError(f"{field} must be true or false", field)

"""What the file destinations (SFTP, S3) share: the file's name and how they fail.

A destination writes the run's result in one format (``?format=``, CSV by default) under
a name that is the same on every try of one delivery, so a resend replaces the file.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

from dancecat_core.errors import DancecatError, ValidationError

DEFAULT_FORMAT = "csv"
FORMAT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class DeliveryError(DancecatError):
    """A destination refused or failed a delivery; the message says why, in one line."""

    code = "delivery"


def file_name(job_name: str, due: str | None, tracker_id: int, extension: str) -> str:
    """``<job>_<due date>_run<id>.<ext>``: the job's name with anything but letters, digits,
    ``.``, ``_`` and ``-`` made ``_``; the due (else finish) date as ``YYYY-MM-DD``."""
    job = _UNSAFE.sub("_", job_name).strip("._") or "job"
    date = (due or "")[:10] or "undated"
    return f"{job}_{date}_run{tracker_id}.{extension}"


def split_url(url: str, scheme: str, secret: str) -> SplitResult:
    """``url`` split, its port checked; refusals never quote the URL, which may hold a
    secret (a ``/`` in a password ends the host part early: ``secret`` names what to fix)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != scheme:
        raise ValidationError(f"not an {scheme}:// URL")
    if "@" not in parts.netloc and "@" in parts.path:
        raise ValidationError(f"type a / in {secret} as %2F")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ValidationError(
            f"the port of a {scheme}:// URL is a number from 1 to 65535"
        ) from None
    return parts

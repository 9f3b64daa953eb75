"""What the file destinations (SFTP, S3, folder) share: the file and its name.

A file destination writes a successful run's result in one format (``?format=``, CSV by
default) under the name the job's file name template gives (``file_name``), the same on
every try of one delivery, so a resend replaces the file. A failed run has no result:
nothing is written. A "Send test" writes ``dancecat_test.txt``, proving the login and the
right to write.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from urllib.parse import SplitResult, urlsplit

import attrs

from dancecat_core.errors import DancecatError, ValidationError
from dancecat_core.notifiers import Export, Notifier, ResultFile, RunNotice, check_format
from dancecat_core.outbound import literal_refusal

DEFAULT_FORMAT = "csv"
FORMAT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


class DeliveryError(DancecatError):
    """A destination refused or failed a delivery; the message says why, in one line."""

    code = "delivery"


TEST_FILE = "dancecat_test.txt"
TEST_BODY = b"DanceCat test delivery\n"


def file_name(notice: RunNotice, extension: str) -> tuple[str, tuple[str, ...]]:
    """The result file's name: the job's file name template (``messages.file_name``,
    default ``<job>_<due date>_run<id>``) rendered with the run's values and made safe,
    plus ``.extension``; and the notes saying a template fell back to the default. The
    same on every try of the run's delivery, so a resend replaces the file."""
    from dancecat_core import messages  # jinja2, at first use

    date = (notice.due_at or notice.finished_at or dt.datetime.now(dt.UTC).isoformat())[:10]
    known = {"job_slug": messages.slug(notice.job_name), "due_date": date}
    context = {**known, "run_id": notice.tracker_id, **notice.context}
    stem, notes = messages.file_name(context, notice.templates)
    return f"{stem}.{extension}", notes


@attrs.frozen
class InlineFile:
    """A small ``ResultFile`` held in memory (the test delivery's)."""

    filename: str
    media_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def chunks(self) -> Iterator[bytes]:
        return (piece for piece in (self.data,))  # a generator: it has close()


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


@attrs.frozen
class FileNotice(RunNotice):
    """A ``RunNotice`` with the result to write (None for a failed run) and its name."""

    file_name: str = ""
    result: ResultFile | None = attrs.field(default=None, repr=False, eq=False)


def prepare_file(notice: RunNotice, export: Export | None, fmt: str) -> FileNotice:
    """The notice with the run's result as ``fmt`` opened for streaming (not yet read)."""
    fields = attrs.asdict(notice, recurse=False)
    if notice.test:
        test = InlineFile(TEST_FILE, "text/plain", TEST_BODY)
        return FileNotice(**fields, file_name=TEST_FILE, result=test)
    if export is None:
        return FileNotice(**fields)
    result = export(fmt)
    extension = PurePosixPath(result.filename).suffix.lstrip(".") or fmt
    name, notes = file_name(notice, extension)
    fields["notes"] = (*notice.notes, *notes)
    return FileNotice(**fields, file_name=name, result=result)


def check_on_save(notifier: Notifier, host: str | None, fmt: str) -> None:
    """What can be refused when the destination is saved, before any connection: a host
    that is a private address or this machine (``DELIVERY_ALLOW_PRIVATE_HOSTS``), a format
    no exporter provides. ``ValidationError`` with one line."""
    why = host and literal_refusal(host, notifier.settings.delivery_allow_private_hosts)
    if why:
        raise ValidationError(
            f"{why}; private, loopback and link-local hosts need DELIVERY_ALLOW_PRIVATE_HOSTS"
        )
    check_format(fmt, notifier.formats)

"""What the file destinations (SFTP, S3) share: the file, its name, the host check.

A destination writes a successful run's result in one format (``?format=``, CSV by
default) under a name that is the same on every try of one delivery, so a resend replaces
the file. A failed run has no result: nothing is written. A "Send test" writes
``dancecat_test.txt`` (as the folder destination does), proving the login and the right to
write.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import socket
from collections.abc import Iterator
from pathlib import PurePosixPath
from urllib.parse import SplitResult, urlsplit

import attrs

from dancecat_core.errors import DancecatError, ValidationError
from dancecat_core.notifiers import Export, ResultFile, RunNotice

DEFAULT_FORMAT = "csv"
FORMAT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class DeliveryError(DancecatError):
    """A destination refused or failed a delivery; the message says why, in one line."""

    code = "delivery"


TEST_FILE = "dancecat_test.txt"
TEST_BODY = b"DanceCat test delivery\n"


def file_name(job_name: str, due: str | None, tracker_id: int, extension: str) -> str:
    """``<job>_<due date>_run<id>.<ext>``: the job's name with anything but letters, digits,
    ``.``, ``_`` and ``-`` made ``_``; the due (else finish, else today's) date."""
    job = _UNSAFE.sub("_", job_name).strip("._-")[:100] or "job"
    date = (due or dt.datetime.now(dt.UTC).isoformat())[:10]
    return f"{job}_{date}_run{tracker_id}.{extension}"


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
    due = notice.due_at or notice.finished_at
    name = file_name(notice.job_name, due, notice.tracker_id, extension)
    return FileNotice(**fields, file_name=name, result=result)


def addresses(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The addresses ``host`` resolves to, refusing (``DeliveryError``) any that is not
    public unless ``allow_private`` (``DELIVERY_ALLOW_PRIVATE_HOSTS``): a destination must
    not reach this machine, its LAN or a cloud metadata service on a user's say-so."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise DeliveryError(f"cannot resolve {host}: {exc.strerror or exc}") from None
    ips = list(dict.fromkeys(info[4][0] for info in found))
    if not allow_private:
        for ip in ips:
            address = ipaddress.ip_address(ip.split("%")[0])
            mapped = getattr(address, "ipv4_mapped", None)
            if not (mapped or address).is_global:
                raise DeliveryError(
                    f"refused: {host} is a private or loopback address ({ip}); an admin may "
                    "allow those with DELIVERY_ALLOW_PRIVATE_HOSTS"
                )
    return ips

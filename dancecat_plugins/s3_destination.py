"""The S3-compatible destination: ``s3://KEY_ID:SECRET@bucket/prefix/`` gets each result file.

Any S3-compatible service: AWS by default, or MinIO, Ceph, R2... with
``?endpoint=https://host:port`` (path-style addressing) and ``?region=``. The credentials
are the URL's user and password (the secret is kept encrypted and shown as ``***``; a ``/``
in it is typed ``%2F``).

The result is streamed from the result store in parts of ``S3_PART_SIZE`` bytes
(``s3_transfer``: memory holds about one part whatever the result's size). S3 shows an
object only once its upload completes, and a resend writes the same key, so it replaces the
object rather than adding one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import attrs

from dancecat_core.errors import ValidationError
from dancecat_core.hookspecs import hookimpl
from dancecat_core.notifiers import Attachment, Destination, Export, Notifier, RunNotice
from dancecat_plugins import s3_transfer
from dancecat_plugins.destination_files import (
    DEFAULT_FORMAT,
    FORMAT_NAME,
    DeliveryError,
    FileNotice,
    check_on_save,
    prepare_file,
    split_url,
)

SCHEME = "s3"
OPTIONS = ("endpoint", "region", "format")
# S3's bucket naming rules (3-63 lower-case letters, digits, dots and hyphens).
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@attrs.frozen
class S3Target:
    """A parsed S3 destination; ``secret_access_key`` is its secret."""

    bucket: str
    prefix: str
    access_key_id: str
    secret_access_key: str = attrs.field(repr=False)
    endpoint: str | None = None
    region: str | None = None
    format: str = DEFAULT_FORMAT

    def key(self, name: str) -> str:
        return self.prefix + name

    @property
    def place(self) -> s3_transfer.S3Place:
        return s3_transfer.S3Place(
            bucket=self.bucket,
            endpoint=self.endpoint,
            region=self.region,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
        )

    def shown(self) -> str:
        """The destination with its secret masked."""
        netloc = f"{quote(self.access_key_id, safe='')}:***@{self.bucket}"
        query = []
        if self.endpoint:
            query.append(f"endpoint={self.endpoint}")
        if self.region:
            query.append(f"region={self.region}")
        if self.format != DEFAULT_FORMAT:
            query.append(f"format={self.format}")
        return urlunsplit((SCHEME, netloc, "/" + quote(self.prefix), "&".join(query), ""))


def parse_target(url: str) -> S3Target:
    """Read an ``s3://`` URL; ``ValidationError`` with one line saying what is wrong."""
    text = url.strip()
    parts = split_url(text, SCHEME, "the secret access key")
    if "@" not in parts.netloc:
        raise ValidationError(
            "an s3:// URL needs credentials: s3://ACCESS_KEY_ID:SECRET_ACCESS_KEY@bucket/prefix/"
        )
    if not parts.username or parts.password is None:
        raise ValidationError("an s3:// URL needs both an access key id and a secret access key")
    bucket = parts.hostname or ""
    if parts.port is not None or not BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ValidationError(
            f"{bucket!r} is not a bucket name (3-63 lower-case letters, digits, '.' and '-')"
        )
    if parts.fragment:
        raise ValidationError("an s3:// URL has no #fragment")
    prefix = unquote(parts.path).lstrip("/")
    if prefix and not prefix.endswith("/"):
        raise ValidationError("an s3:// prefix names a folder: end it with /")
    if "\x00" in prefix or len(prefix.encode()) > 700:
        raise ValidationError("an s3:// prefix is at most 700 bytes, without NUL")
    options = _options(parts.query)
    endpoint = options.get("endpoint")
    if endpoint is not None:
        endpoint_parts = urlsplit(endpoint)
        if endpoint_parts.scheme not in ("http", "https") or not endpoint_parts.hostname:
            raise ValidationError("endpoint is an http:// or https:// address")
    fmt = options.get("format", DEFAULT_FORMAT)
    if not FORMAT_NAME.fullmatch(fmt):
        raise ValidationError(f"format={fmt!r} is not a format name")
    region = options.get("region")
    if region is not None and not re.fullmatch(r"[a-z0-9-]{1,40}", region):
        raise ValidationError(f"region={region!r} is not a region name")
    return S3Target(
        bucket=bucket,
        prefix=prefix,
        access_key_id=unquote(parts.username),
        secret_access_key=unquote(parts.password),
        endpoint=endpoint,
        region=region,
        format=fmt,
    )


def _options(query: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")
        key, value = unquote(key), unquote(value)
        if key not in OPTIONS:
            raise ValidationError(f"unknown s3:// option {key!r} (known: {', '.join(OPTIONS)})")
        if key in options:
            raise ValidationError(f"the s3:// option {key!r} is given twice")
        options[key] = value
    return options


def upload(
    target: S3Target,
    name: str,
    chunks: Iterable[bytes],
    media_type: str,
    *,
    part_size: int,
    timeout: float,
    allow_private: bool,
) -> str:
    """Write ``chunks`` to ``target.key(name)``, holding at most about one part in memory;
    return the key. Raises ``DeliveryError`` with one line saying what went wrong."""
    place = target.place
    key = target.key(name)
    place.check_endpoint(allow_private=allow_private)
    writer = s3_transfer.MultipartUpload(
        s3_transfer.client(place, timeout), place, key, media_type, part_size=part_size
    )
    try:
        for chunk in chunks:
            writer.write(chunk)
        writer.complete()
    except s3_transfer.TransferError as exc:
        raise DeliveryError(str(exc)) from None
    finally:
        writer.abort()  # nothing to drop once complete
    return key


class S3Notifier(Notifier):
    """Writes each successful run's result file to an ``s3://`` destination."""

    name = "s3"
    schemes = (SCHEME,)

    def parse(self, url: str) -> Destination:
        target = parse_target(url)
        endpoint = urlsplit(target.endpoint).hostname if target.endpoint else None
        check_on_save(self, endpoint, target.format)
        return Destination(target.shown(), {"url": url.strip()})

    def prepare(
        self, notice: RunNotice, export: Export | None
    ) -> tuple[FileNotice, Attachment | None]:
        return prepare_file(notice, export, parse_target(notice.url).format), None

    def deliver(self, notice: FileNotice, attachment: Attachment | None) -> None:  # type: ignore[override]
        if notice.result is None:
            return  # a failed run has no file to write
        chunks = notice.result.chunks
        try:
            upload(
                parse_target(notice.url),
                notice.file_name,
                chunks,
                notice.result.media_type,
                part_size=self.settings.s3_part_size,
                timeout=self.settings.delivery_timeout,
                allow_private=self.settings.delivery_allow_private_hosts,
            )
        finally:
            chunks.close()  # type: ignore[attr-defined]


@hookimpl
def dancecat_register_notifiers() -> list[type[Notifier]]:
    return [S3Notifier]

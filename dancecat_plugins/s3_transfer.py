"""Moving bytes to and from an S3-compatible service; shared by the S3 destination and the
S3 result store, so both upload, download and explain failures the same way.

Any S3-compatible service: AWS by default, or MinIO, Ceph, R2... given an ``endpoint``
(path-style addressing then). Credentials are given, or, when ``access_key_id`` is None,
boto3's own chain finds them (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile,
an instance role).

An upload is written in parts of a fixed size (a multipart upload; a blob smaller than one
part is one PUT), so memory holds about one part whatever the blob's size. S3 shows an
object only once its upload completes: a writer that dies halfway leaves parts that no
reader sees (``abort`` drops them; a bucket lifecycle rule is the backstop).

A plugin only for ``S3_PART_SIZE``, the one part size both users read. boto3 is imported
when a client is first made, not when a plugin loads: every console
command loads every plugin.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any
from urllib.parse import urlsplit

import attrs

from dancecat_core.hookspecs import hookimpl
from dancecat_core.outbound import resolve
from dancecat_core.settings import POSITIVE_INT, SettingSpec, SettingType

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's floor for every part but the last
DEFAULT_PART_SIZE = 8 * 1024 * 1024


class TransferError(Exception):
    """An S3 request failed; ``str()`` is one line saying which and why (no secret)."""


@attrs.frozen
class S3Place:
    """A bucket on a service, with the credentials to reach it; ``secret_access_key`` is
    the secret. No ``access_key_id``: boto3's credential chain is asked."""

    bucket: str
    endpoint: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = attrs.field(default=None, repr=False)

    def check_endpoint(self, *, allow_private: bool) -> None:
        """Refuse an endpoint on a private address unless allowed (``outbound.resolve``)."""
        if self.endpoint:
            endpoint = urlsplit(self.endpoint)
            port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
            resolve(endpoint.hostname or "", port, allow_private=allow_private)


def client(place: S3Place, timeout: float, *, attempts: int = 1) -> Any:
    """A boto3 S3 client for ``place``; ``attempts`` per request (1: the caller retries)."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": attempts},
        s3={"addressing_style": "path" if place.endpoint else "auto"},
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=place.endpoint,
        region_name=place.region or "us-east-1",
        aws_access_key_id=place.access_key_id,
        aws_secret_access_key=place.secret_access_key,
        config=config,
    )


def failure(place: S3Place, key: str, exc: Exception) -> TransferError | None:
    """``exc`` as one line naming the object, or None when it is not boto3's."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return TransferError(
            f"s3://{place.bucket}/{key}: {exc.operation_name} refused: "
            f"{error.get('Code', '?')} {error.get('Message', '')}".rstrip()
        )
    if isinstance(exc, BotoCoreError):
        return TransferError(f"s3://{place.bucket}/{key}: {exc}")
    return None


@contextlib.contextmanager
def explained(place: S3Place, key: str):
    """Turn boto3's errors inside the block into ``TransferError``."""
    try:
        yield
    except Exception as exc:
        known = failure(place, key, exc)
        if known is None:
            raise
        raise known from None


def is_missing(exc: Exception) -> bool:
    """True when boto3 says the object (or the bucket) is not there."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    code = exc.response.get("Error", {}).get("Code", "")
    return code in ("NoSuchKey", "404", "NotFound", "NoSuchBucket")


class MultipartUpload:
    """An object being written: ``write`` as the bytes come, then ``complete`` or ``abort``.

    At most one part (``part_size`` bytes) is held: a full part is sent as soon as it is
    filled, and the buffer that held it is dropped, not copied.
    """

    def __init__(
        self, s3: Any, place: S3Place, key: str, media_type: str, *, part_size: int
    ) -> None:
        self._s3 = s3
        self._place = place
        self.key = key
        self._media_type = media_type
        self._part_size = max(part_size, MIN_PART_SIZE)
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._size = 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            room = self._part_size - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) == self._part_size:
                self._send_part()
        self._size += len(data)
        return len(data)

    def _send_part(self) -> None:
        bucket, key = self._place.bucket, self.key
        with explained(self._place, key):
            if self._upload_id is None:
                self._upload_id = self._s3.create_multipart_upload(
                    Bucket=bucket, Key=key, ContentType=self._media_type
                )["UploadId"]
            number = len(self._parts) + 1
            body, self._buffer = self._buffer, bytearray()
            answer = self._s3.upload_part(
                Bucket=bucket, Key=key, UploadId=self._upload_id, PartNumber=number, Body=body
            )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def complete(self) -> int:
        """Make the object visible; return its size. ``TransferError`` if S3 refused."""
        bucket, key = self._place.bucket, self.key
        try:
            with explained(self._place, key):
                if self._upload_id is None:
                    body, self._buffer = bytes(self._buffer), bytearray()
                    self._s3.put_object(
                        Bucket=bucket, Key=key, Body=body, ContentType=self._media_type
                    )
                    return self._size
                if self._buffer:
                    self._send_part()
                self._s3.complete_multipart_upload(
                    Bucket=bucket,
                    Key=key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
                self._upload_id = None
                return self._size
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the parts sent so far (the bucket would keep, and bill, them). Safe twice."""
        from botocore.exceptions import BotoCoreError, ClientError

        self._buffer = bytearray()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            with contextlib.suppress(BotoCoreError, ClientError):
                self._s3.abort_multipart_upload(
                    Bucket=self._place.bucket, Key=self.key, UploadId=upload_id
                )


class BodyReader(io.RawIOBase):
    """A ``get_object`` body as a raw stream: read as the socket delivers, closed with it."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        data = self._body.read(len(target))
        target[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _part_size(raw: str) -> int:
    value = POSITIVE_INT.parse(raw)
    if value < MIN_PART_SIZE:
        raise ValueError(f"must be at least {MIN_PART_SIZE} (5 MiB, S3's smallest part)")
    return value


PART_SIZE = SettingType(f"integer, at least {MIN_PART_SIZE}", _part_size)


@hookimpl
def dancecat_register_settings() -> list[SettingSpec]:
    return [
        SettingSpec(
            "S3_PART_SIZE",
            PART_SIZE,
            DEFAULT_PART_SIZE,
            "bytes per part of an S3 upload (the `s3://` destination and the `s3` result "
            "store); memory holds about one part",
        ),
    ]

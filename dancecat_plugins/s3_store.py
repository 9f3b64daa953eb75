"""A result store in an S3-compatible bucket (``RESULT_STORE = s3``), for many hosts.

Every web host and consumer reaches the same bucket, the app database stays small, and a
download is streamed from S3 as it arrives (a byte range is fetched as a range). Where:
``RESULT_S3_BUCKET`` under ``RESULT_S3_PREFIX``, on AWS or on ``RESULT_S3_ENDPOINT``
(MinIO, Ceph, R2...). Credentials: ``RESULT_S3_ACCESS_KEY`` and ``RESULT_S3_SECRET_KEY``,
or, with neither set, boto3's own chain (``AWS_ACCESS_KEY_ID``, a profile, an instance
role).

A result is written as a multipart upload in parts of ``S3_PART_SIZE`` (``s3_transfer``):
memory holds about one part, and S3 shows the object only when the upload completes, so a
worker killed halfway leaves nothing a reader could be served. The parts it left are
dropped by the expiry sweep once they are older than the longest run can be.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

from dancecat_core.errors import ConfigError, StoreError
from dancecat_core.hookspecs import hookimpl
from dancecat_core.resultstore import BlobWriter, ResultStore
from dancecat_core.settings import OPTIONAL_TEXT, Settings, SettingSpec, SettingType
from dancecat_plugins import s3_transfer
from dancecat_plugins.s3_transfer import S3Place, TransferError

if TYPE_CHECKING:  # registering the store must not import the ORM (``dancecat export``)
    from sqlalchemy.orm import Session, sessionmaker

NAME = "s3"
# Seconds for one request to S3 to connect or answer; each is tried up to ATTEMPTS times
# (nothing above the store retries a result's write or read).
TIMEOUT_SECONDS = 60
ATTEMPTS = 3
READ_BUFFER = 1 << 20


class _ObjectWriter(BlobWriter):
    def __init__(self, upload: s3_transfer.MultipartUpload):
        self._upload = upload

    def write(self, data: bytes) -> int:
        try:
            return self._upload.write(data)
        except TransferError as exc:
            raise StoreError(f"cannot write the result: {exc}") from None

    def commit(self) -> int:
        try:
            return self._upload.complete()
        except TransferError as exc:
            raise StoreError(f"cannot save the result: {exc}") from None

    def abort(self) -> None:
        self._upload.abort()


class S3ResultStore(ResultStore):
    name = NAME

    def __init__(self, settings: Settings, session_factory: sessionmaker[Session]):
        super().__init__(settings, session_factory)
        if settings.result_store == NAME:
            self.place  # noqa: B018 - a missing bucket or half a key pair fails at start-up

    @functools.cached_property
    def place(self) -> S3Place:
        settings = self.settings
        if not settings.result_s3_bucket:
            raise ConfigError("setting RESULT_S3_BUCKET: the s3 result store needs a bucket")
        key_id, secret = settings.result_s3_access_key, settings.result_s3_secret_key
        if (key_id is None) != (secret is None):
            raise ConfigError(
                "settings RESULT_S3_ACCESS_KEY and RESULT_S3_SECRET_KEY: set both, or neither "
                "(then boto3 finds credentials in AWS_* variables, a profile or a role)"
            )
        return S3Place(
            bucket=settings.result_s3_bucket,
            endpoint=settings.result_s3_endpoint,
            region=settings.result_s3_region,
            access_key_id=key_id,
            secret_access_key=secret,
        )

    @functools.cached_property
    def _s3(self) -> Any:
        return s3_transfer.client(self.place, TIMEOUT_SECONDS, attempts=ATTEMPTS)

    def _key(self, key: str) -> str:
        return self.settings.result_s3_prefix + key

    def create(self, key: str) -> BlobWriter:
        upload = s3_transfer.MultipartUpload(
            self._s3,
            self.place,
            self._key(key),
            "application/octet-stream",
            part_size=self.settings.s3_part_size,
        )
        return _ObjectWriter(upload)

    def _get(self, key: str, **extra: str) -> BinaryIO:
        name = self._key(key)
        try:
            with s3_transfer.explained(self.place, name):
                try:
                    answer = self._s3.get_object(Bucket=self.place.bucket, Key=name, **extra)
                except Exception as exc:
                    if s3_transfer.is_missing(exc):
                        raise StoreError(f"result {key} is not in the store") from None
                    raise
        except TransferError as exc:
            raise StoreError(f"cannot read the result: {exc}") from None
        body = s3_transfer.BodyReader(answer["Body"])
        return io.BufferedReader(body, buffer_size=READ_BUFFER)  # type: ignore[return-value]

    def open(self, key: str) -> BinaryIO:
        return self._get(key)

    def open_range(self, key: str, start: int, length: int) -> BinaryIO:
        if length <= 0:
            return io.BytesIO(b"")
        return self._get(key, Range=f"bytes={start}-{start + length - 1}")

    def size(self, key: str) -> int | None:
        name = self._key(key)
        try:
            with s3_transfer.explained(self.place, name):
                try:
                    head = self._s3.head_object(Bucket=self.place.bucket, Key=name)
                except Exception as exc:
                    if s3_transfer.is_missing(exc):
                        return None
                    raise
        except TransferError as exc:
            raise StoreError(f"cannot read the result: {exc}") from None
        return int(head["ContentLength"])

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def delete(self, key: str) -> None:
        name = self._key(key)
        try:
            with s3_transfer.explained(self.place, name):
                self._s3.delete_object(Bucket=self.place.bucket, Key=name)
        except TransferError as exc:
            raise StoreError(f"cannot delete the result: {exc}") from None

    def drop_abandoned(self, before: dt.datetime) -> int:
        """Abort the uploads under the prefix begun before ``before`` (their writer died)."""
        prefix = self.settings.result_s3_prefix
        dropped = 0
        try:
            with s3_transfer.explained(self.place, prefix):
                pages = self._s3.get_paginator("list_multipart_uploads").paginate(
                    Bucket=self.place.bucket, Prefix=prefix
                )
                for page in pages:
                    for upload in page.get("Uploads", ()):
                        if upload["Initiated"] < before:
                            self._s3.abort_multipart_upload(
                                Bucket=self.place.bucket,
                                Key=upload["Key"],
                                UploadId=upload["UploadId"],
                            )
                            dropped += 1
        except TransferError as exc:
            raise StoreError(f"cannot drop abandoned uploads: {exc}") from None
        return dropped


def _endpoint(raw: str) -> str | None:
    text = raw.strip()
    if not text:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// address")
    return text


def _prefix(raw: str) -> str:
    text = raw.strip().lstrip("/")
    if text and not text.endswith("/"):
        raise ValueError("names a folder: end it with /")
    return text


ENDPOINT = SettingType("http(s) URL (empty: AWS)", _endpoint)
PREFIX = SettingType("text ending in / (empty: the bucket's top)", _prefix)


@hookimpl
def dancecat_register_result_stores() -> list[type[ResultStore]]:
    return [S3ResultStore]


@hookimpl
def dancecat_register_settings() -> list[SettingSpec]:
    return [
        SettingSpec("RESULT_S3_BUCKET", OPTIONAL_TEXT, None, "the bucket of the `s3` result store"),
        SettingSpec(
            "RESULT_S3_ENDPOINT",
            ENDPOINT,
            None,
            "the S3-compatible service of the `s3` result store (MinIO, Ceph, R2...); unset: AWS",
        ),
        SettingSpec(
            "RESULT_S3_REGION", OPTIONAL_TEXT, None, "the bucket's region (unset: us-east-1)"
        ),
        SettingSpec(
            "RESULT_S3_PREFIX", PREFIX, "", "the folder in the bucket results are written under"
        ),
        SettingSpec(
            "RESULT_S3_ACCESS_KEY",
            OPTIONAL_TEXT,
            None,
            "access key id for the `s3` result store; unset: boto3's chain (`AWS_*` "
            "variables, a profile, an instance role)",
        ),
        SettingSpec(
            "RESULT_S3_SECRET_KEY",
            OPTIONAL_TEXT,
            None,
            "the secret access key that goes with `RESULT_S3_ACCESS_KEY`",
            secret=True,
        ),
    ]

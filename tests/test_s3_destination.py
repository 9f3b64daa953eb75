"""The S3-compatible destination against moto's S3 server, started by the test."""

from __future__ import annotations

import hashlib
import os
import tracemalloc

import boto3
import pytest

from dancecat_core.errors import ConfigError, DancecatError, ValidationError
from dancecat_core.settings import load_settings
from dancecat_plugins.destination_files import DeliveryError
from dancecat_plugins.s3_destination import parse_target, upload
from dancecat_plugins.s3_transfer import MIN_PART_SIZE

KEY_ID, SECRET = "AKIDTEST", "se/cr+et"


@pytest.fixture
def bucket(moto):
    name = f"results-{os.urandom(4).hex()}"
    s3().create_bucket(Bucket=name)
    return name


def s3(endpoint: str | None = None):
    return boto3.client(
        "s3",
        endpoint_url=endpoint or _endpoint[0],
        region_name="us-east-1",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    )


_endpoint: list[str] = []


@pytest.fixture(autouse=True)
def _remember(moto):
    _endpoint[:] = [moto.endpoint]


def _put(target, name, chunks, part_size=0, *, allow_private=True):
    return upload(
        target, name, chunks, "text/csv", part_size=part_size, timeout=10,
        allow_private=allow_private,
    )  # fmt: skip


def url(bucket: str, prefix: str = "daily/") -> str:
    return f"s3://{KEY_ID}:se%2Fcr%2Bet@{bucket}/{prefix}?endpoint={_endpoint[0]}&region=us-east-1"


def test_small_result_is_one_object_and_a_resend_overwrites_it(bucket):
    target = parse_target(url(bucket))
    assert target.secret_access_key == SECRET
    key = _put(target, "a.csv", iter([b"a,b\n", b"1,2\n"]), 0)
    assert key == "daily/a.csv"
    _put(target, "a.csv", iter([b"a,b\n3,4\n"]), 0)
    listed = s3().list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == ["daily/a.csv"]
    assert s3().get_object(Bucket=bucket, Key=key)["Body"].read() == b"a,b\n3,4\n"


def _stream(total: int, chunk: int = 64 * 1024):
    """``total`` bytes in ``chunk``s, made as they are read (never all in memory)."""
    made = 0
    line = b"0123456789abcdef" * 4
    while made < total:
        piece = (line * (chunk // len(line)))[: min(chunk, total - made)]
        made += len(piece)
        yield piece


def _peak(target, name: str, total: int) -> int:
    tracemalloc.start()
    try:
        _put(target, name, _stream(total), MIN_PART_SIZE)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("tail", [123_457, 0])
def test_large_result_goes_in_parts_in_bounded_memory(bucket, tail):
    total = 4 * MIN_PART_SIZE + tail  # five parts, the last short; or exactly four
    digest = hashlib.sha256(b"".join(_stream(total))).hexdigest()
    target = parse_target(url(bucket, ""))
    baseline = _peak(target, "tiny.csv", 10)  # what a client and one request cost
    peak = _peak(target, "big.csv", total)
    body = s3().get_object(Bucket=bucket, Key="big.csv")
    assert body["ContentLength"] == total
    assert hashlib.sha256(body["Body"].read()).hexdigest() == digest
    head = s3().head_object(Bucket=bucket, Key="big.csv", PartNumber=1)
    assert head["PartsCount"] == (5 if tail else 4)
    extra = peak - baseline
    print(
        f"{total / 2**20:.1f} MiB in parts of 5 MiB: {extra / 2**20:.1f} MiB above a 10-byte upload"
    )
    assert extra < 2.5 * MIN_PART_SIZE, extra  # about one part held, never the whole result


def test_refusals_say_why(moto, bucket):
    missing = parse_target(url("no-such-bucket"))
    with pytest.raises(DeliveryError, match="PutObject refused: NoSuchBucket"):
        _put(missing, "a.csv", iter([b"x"]), 0)
    from test_web_helpers import free_port

    down = parse_target(f"s3://k:s@{bucket}/?endpoint=http://127.0.0.1:{free_port()}")
    with pytest.raises(DeliveryError, match="Could not connect to the endpoint URL"):
        _put(down, "a.csv", iter([b"x"]), 0)


@pytest.mark.parametrize(
    "endpoint", ["127.0.0.1", "localhost", "127.1", "[::1]", "[::ffff:127.0.0.1]", "10.1.2.3"]
)
def test_private_endpoints_are_refused_unless_allowed(endpoint):
    target = parse_target(f"s3://k:s@bucket/?endpoint=http://{endpoint}:9/")
    with pytest.raises(DancecatError, match="hosts need DELIVERY_ALLOW_PRIVATE_HOSTS"):
        _put(target, "a.csv", iter([b"x"]), allow_private=False)


def test_secret_is_masked_in_the_shown_form(bucket):
    target = parse_target(url(bucket))
    assert SECRET not in target.shown() and "se%2F" not in target.shown()
    assert target.shown().startswith(f"s3://{KEY_ID}:***@{bucket}/daily/?endpoint=")
    assert SECRET not in repr(target)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("s3://bucket/p/", "needs credentials"),
        ("s3://k:se/cret@bucket/p/", r"type a / in the secret access key as %2F"),
        ("s3://k@bucket/p/", "both an access key id and a secret"),
        ("s3://k:s@Bad_Bucket/p/", "is not a bucket name"),
        ("s3://k:s@bucket:9000/p/", "is not a bucket name"),
        ("s3://k:s@bucket/p", "end it with /"),
        ("s3://k:s@bucket/p/?endpoint=ftp://x", "endpoint is an http"),
        ("s3://k:s@bucket/p/?acl=public", "unknown s3:// option 'acl'"),
        ("s3://k:s@bucket/p/?region=x&region=y", "given twice"),
    ],
)
def test_bad_urls_get_one_line(text, message):
    with pytest.raises(ValidationError, match=message):
        parse_target(text)


def test_a_part_size_below_s3s_floor_is_refused_at_start_up(tmp_path):
    environ = {"DANCECAT_HOME": str(tmp_path), "DANCECAT_S3_PART_SIZE": "1000"}
    with pytest.raises(
        ConfigError, match=r"^setting S3_PART_SIZE: '1000' must be at least 5242880"
    ):
        load_settings(environ=environ)
